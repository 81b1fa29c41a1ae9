"""Helpers shared by `make run` and the end-to-end tests: render an Envoy bootstrap that loads the
filter, start local processes, wait until they are healthy, and stop them by pid."""
