import sys

from lab_hooks.cli import main

if __name__ == "__main__":
    sys.exit(main())
