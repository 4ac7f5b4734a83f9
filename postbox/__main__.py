"""`python -m postbox ...` runs the same command line as the `postbox` console script."""

from postbox.startup import exit_cleanly_on_sigterm

exit_cleanly_on_sigterm()  # before the imports below, which take most of a start

from postbox.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
