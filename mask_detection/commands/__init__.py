"""The command lines (the top layer): argv in, printed lines and an exit code out.

Each module has ``main(argv) -> exit code`` (tests call it in-process) and ``run()`` (the console script and the
top-level script). Nothing below this package prints for the user, reads argv or names a command-line flag.
"""
