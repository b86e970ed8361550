"""Start the kzqa web chat: python app.py [--host 127.0.0.1] [--port 7860] [--auth user:pass]."""

import sys

from kzqa.app.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]])
