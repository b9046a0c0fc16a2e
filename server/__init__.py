"""The composition root: settings, the Starlette app, the CLI and process supervision."""
