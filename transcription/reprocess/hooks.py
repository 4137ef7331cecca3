"""Points in reprocessing where other apps join in, so that reprocessing imports none of them.

Receivers run in the worker that sends, on its thread, with the job's folder still in place.
"""
from django.dispatch import Signal

# Sent on the GPU worker once a recording's speakers are separated, while the audio and the pipeline are
# at hand. Keyword arguments: meeting, pipeline (a loaded pyannote pipeline), pcm (16 kHz int16), turns,
# pipeline_version, path (a file in the job's folder that a receiver may write; removed with the folder).
speakers_separated = Signal()

# Sent once a meeting's speakers are stored, after a full reprocessing or after separating speakers again.
# Keyword arguments: meeting, pipeline_version, path (the same file as above; it may not exist).
speakers_stored = Signal()
