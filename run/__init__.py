"""`make run` and its end-to-end test: run/stack.py (see its docstring)."""
