"""Read-only commands on run folders; each module has ``main(args: list[str]) -> int``."""
