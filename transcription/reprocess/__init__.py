"""Reprocessing of recordings: decode, transcribe at a longer delay, separate speakers, align, store.

Each stage is a plain function over files (no Django in decode/diarize/align); `pipeline.py` ties them
to the job row, and `transcription/tasks.py` runs each stage as one Celery task.
"""
