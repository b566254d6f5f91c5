"""Write docs/errors.md from the error cases: ``.venv/bin/python -m tests.errors.render``."""

from tests.errors.framework import DOC, render

if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
