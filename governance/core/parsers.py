"""The API's body parsers (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): bounded in size and depth, and refusing text
PostgreSQL cannot hold, before any view, authentication or serializer reads the body. Every value of a body then
reaches fields and queries as storable text, whichever field reads it (a name looked up, a unique check, jsonb)."""

from django.conf import settings
from django.http import QueryDict
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from governance.core.inputs import JSONRefused, json_parsed, text_fault


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, limit: int | None = None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if limit is None else limit
        super().__init__(f"The request body is larger than this endpoint's limit of {limit} bytes.")


def _bounded_read(stream, parser_context: dict | None) -> bytes:
    """The body, refused with a 413 beyond DATA_UPLOAD_MAX_MEMORY_SIZE or the view's own smaller `max_body_bytes`:
    on its declared length before a byte is read, else on what is read. DRF reads the stream itself, past the
    check Django makes on `request.body`."""
    context = parser_context or {}
    limits = [limit for limit in (settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
                                  getattr(context.get("view"), "max_body_bytes", None)) if limit is not None]
    limit = min(limits, default=None)
    if limit is None:
        return stream.read()
    request = context.get("request")
    declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise BodyTooLarge(limit)
    return raw


def _refused(field: str | None, code: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field or "non_field_errors": [exceptions.ErrorDetail(message, code=code)]})


class BoundedJSONParser(JSONParser):
    """JSON parsed by `json_parsed`: nesting beyond MAX_JSON_DEPTH is a 400 `too_deep`, never a RecursionError;
    a NUL or an unpaired surrogate is a 400 naming where it is."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = _bounded_read(stream, parser_context)
        try:
            text = raw.decode((parser_context or {}).get("encoding", settings.DEFAULT_CHARSET))
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - not UTF-8 text (byte {exc.start + 1}).") from None
        try:
            return json_parsed(text)
        except JSONRefused as refusal:
            if refusal.code == "parse_error":
                raise exceptions.ParseError(f"JSON parse error - {refusal.message}") from None
            raise _refused(refusal.path, refusal.code, refusal.message) from None


def _storable(data: QueryDict) -> QueryDict:
    for name, values in data.lists():
        for text in (name, *values):
            fault = text_fault(text)
            if fault:
                raise _refused(name.replace("\x00", ""), fault.code, fault.message)
    return data


class BoundedFormParser(FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return _storable(QueryDict(_bounded_read(stream, parser_context), encoding=encoding))


class BoundedMultiPartParser(MultiPartParser):
    """Django's multipart parser bounds the fields itself (RequestDataTooBig, a 413 here); files are read by the
    views that take them, after their permission check."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _storable(parsed.data)
        return parsed
