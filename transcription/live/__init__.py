"""Live captions: the host's audio in, captions out to every follower of the meeting."""
