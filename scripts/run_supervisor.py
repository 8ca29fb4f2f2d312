#!/usr/bin/env python3
"""The service's command line from a checkout: the same as the ``paper-node`` command."""

import sys

from cli import main

if __name__ == "__main__":
    sys.exit(main())
