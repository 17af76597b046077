"""The process log: one JSON object a line, so a log pipeline reads fields instead of parsing sentences.

Django's, Celery's and our own `logging` calls and structlog's events go through the same formatter: each line has
its time (UTC), level, logger and event, plus whatever the caller bound (a deployment's number, a request's id).
A request's id is bound for the whole request, so every line it causes carries it. LOG_FORMAT=console writes the
same events for a person reading a terminal.
"""

import logging
import time

import structlog

# Applied to every event, structlog's and the standard library's alike.
_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(*, level: str, fmt: str) -> dict:
    """Django's LOGGING for `fmt` (json or console), with structlog configured to hand its events to it."""
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if fmt == "console"
                else structlog.processors.JSONRenderer())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [*_SHARED, structlog.stdlib.ExtraAdder()],
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                           structlog.processors.format_exc_info, renderer],
        }},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        # WeasyPrint narrates each PDF it renders (ten lines a change evidence PDF), httpx each request an executor,
        # a probe or an ITSM connector makes (they log their own outcome): their warnings are enough.
        "loggers": {name: {"level": "WARNING"} for name in ("weasyprint", "fontTools", "httpx", "httpcore")},
    }


request_log = structlog.get_logger("changeboard.request")


class RequestLogMiddleware:
    """One line per request: method, path (never the query string, which may carry what is not ours to log),
    status, duration, who and the request's id. First in the chain, so requests refused early are logged too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        structlog.contextvars.clear_contextvars()
        started = time.monotonic()
        response = self.get_response(request)
        user = getattr(request, "user", None)
        request_log.log(
            logging.WARNING if response.status_code >= 500 else logging.INFO, "request",
            method=request.method, path=request.path, status=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            user=user.get_username() if user is not None and user.is_authenticated else None,
            request_id=getattr(request, "request_id", None))
        # The request's id stays bound: Django logs a refused request's line after the middleware returns.
        return response
