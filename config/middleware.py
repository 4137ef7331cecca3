# Everything the pages need is served by this site; nothing may be loaded from or sent elsewhere.
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", POLICY)
        return response


class NoStoreMiddleware:
    """`Cache-Control: private, no-store` on every page Django renders.

    Meeting titles, transcripts, search hits and captions appear on most pages (the list, a meeting,
    search, the live pages, their JSON); a shared workstation's browser cache or a proxy must keep none
    of them. Static files are answered by WhiteNoise before this runs and stay cacheable. A view that
    sets its own Cache-Control (exports, audio) keeps it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "private, no-store"
        return response
