"""``mdnworld play``: steer M's dream in a browser page and watch pi (session.py: one
player's dream; server.py: the local HTTP server and its page in assets/)."""
