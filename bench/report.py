"""Table and number formatting for `make bench`."""
import statistics


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 10000 else f"{us:.0f} µs"


def fmt_delta(us):
    return f"{'+' if us >= 0 else '-'}{fmt_us(abs(us))}"


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in (0, 1) else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
