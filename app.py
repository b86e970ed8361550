"""Start the kzqa web chat: python app.py [--host 127.0.0.1] [--port 7860] [--auth user:pass]."""

from kzqa.cli import app

if __name__ == "__main__":
    app(["serve", *__import__("sys").argv[1:]])
