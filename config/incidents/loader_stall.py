"""Data-loader stall: a reader that cannot keep up; every batch waits as long as the last step computed
(monitor.slow_reader), so tokens/s halves at any model size. The log line's data wait shows it."""
inject_slow_reader = 1.0
