"""Local fake servers that stand in for third-party APIs in tests (real HTTP on 127.0.0.1)."""
