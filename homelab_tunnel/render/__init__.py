"""Pure renderers: config in, file text out. No I/O, no cdktf."""
