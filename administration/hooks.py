"""Points in administration's jobs where other apps join in, so that administration imports none of them."""
from django.dispatch import Signal

# Sent by the daily retention job after recordings and transcripts are deleted. Keyword arguments:
# site (the SiteSettings row), now (the job's clock). A receiver deletes what its app keeps past the
# site's limits and returns a dict of counts (e.g. {"voiceprints": 2}), merged into the job's result.
retention_due = Signal()
