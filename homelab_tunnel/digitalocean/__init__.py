"""The DigitalOcean API (pydo), used by preflight; slow to import, so loaded on demand."""
