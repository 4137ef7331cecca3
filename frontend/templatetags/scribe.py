from django import template

from meetings.exports import clock as _clock

register = template.Library()


@register.filter
def clock(ms) -> str:
    """Milliseconds as h:mm:ss (or m:ss under an hour), for time stamps people read."""
    text = _clock(int(ms or 0))[:8]
    return text[3:] if text.startswith("00:") else text


@register.filter
def page_of(offset: int, limit: int) -> int:
    """The 1-based page before the one starting at `offset`."""
    return max(1, offset // limit)


@register.filter
def next_page_of(offset: int, limit: int) -> int:
    return offset // limit + 2


@register.simple_tag
def query_with(request, **changes) -> str:
    params = request.GET.copy()
    for key, value in changes.items():
        params[key] = value
    return params.urlencode()


@register.simple_tag
def speech_model_ready() -> bool:
    """Whether a speech model is installed: pages warn before someone starts work that needs one."""
    from transcription.engine_host import speech_model_ready as ready

    return ready()
