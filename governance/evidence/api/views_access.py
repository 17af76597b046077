"""The access review and the auditors' notes, for GRC tools: GET /audit/access-review/ (a period, or one moment)
and GET/POST /audit/notes/."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.core.actors import acting_user
from governance.core.api_permissions import ApiPermission
from governance.core.errors import InvalidInput
from governance.core.inputs import query_moment
from governance.core.serializers import InputSerializer
from governance.evidence.access_review import ACCESS_COLUMNS, access_at, access_review
from governance.evidence.notes import auditor_note_add, exception_key_refusal
from governance.evidence.period import period_from
from governance.evidence.permissions import can_read_evidence
from governance.models import AuditorNote, EvidenceScope


class EvidenceReader(ApiPermission):
    def allows(self, request, view) -> bool:
        return can_read_evidence(request.user)


class AccessRowSerializer(serializers.Serializer):
    subject = serializers.CharField(help_text="The user holding the grant.")
    kind = serializers.ChoiceField(choices=["role", "token"])
    grant = serializers.CharField(help_text="The role, or the token's name and prefix.")
    services = serializers.ListField(child=serializers.CharField(), help_text='The services it reaches; "*": any.')
    environments = serializers.ListField(child=serializers.CharField(),
                                         help_text='The environments it reaches; "*": any.')
    held_from = serializers.DateTimeField(allow_null=True)
    held_until = serializers.DateTimeField(allow_null=True, help_text="null: still held.")
    # Named like Field's `source` argument: DRF's metaclass takes it out of the class, mypy does not know that.
    source = serializers.CharField(help_text="The ledger events it was read from.")  # type: ignore[assignment]


class AccessReviewSerializer(serializers.Serializer):
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)
    scope = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = AccessRowSerializer(many=True)


class AccessReviewView(APIView):
    """Who held which role and which tokens could act for which services and environments: every grant held
    during the period (`start` to `end`), or at the moment `at`, replayed from the ledger."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=AccessReviewSerializer, parameters=[
        OpenApiParameter("start", str, description="First day (2026-01-01) or moment of the period."),
        OpenApiParameter("end", str, description="Last day (counted whole) or moment of the period."),
        OpenApiParameter("scope", str, enum=EvidenceScope.values, description="CIs in scope; default all."),
        OpenApiParameter("at", str, description="A moment: the grants held then, instead of a period."),
    ])
    def get(self, request):
        params = request.query_params
        if params.get("at") is not None:
            at = query_moment(params["at"], field="at")
            if at is None:
                raise InvalidInput("Give the moment to review (2026-01-31T12:00:00Z).", field="at", code="required")
            answer = {"start": None, "end": None, "at": at, "scope": EvidenceScope.ALL, "rows": access_at(at)}
        else:
            period = period_from(params.get("start", ""), params.get("end", ""),
                                 params.get("scope", EvidenceScope.ALL))
            answer = {"start": period.start, "end": period.end, "at": None, "scope": period.scope,
                      "rows": access_review(period)}
        return Response(AccessReviewSerializer({**answer, "columns": list(ACCESS_COLUMNS)}).data)


class AuditorNoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = AuditorNote
        fields = ["id", "exception_key", "text", "author", "created_at"]


class AuditorNoteInputSerializer(InputSerializer):
    exception_key = serializers.CharField(max_length=200, help_text="The exception's key, e.g. "
                                                                    "approval_after_start:DEP0000045.")
    text = serializers.CharField(max_length=5000, help_text="What the auditor notes; 1 to 5000 characters.")


class AuditorNoteListView(APIView):
    """GET: the auditors' notes, oldest first, those on one exception with `exception_key`. POST (auditors only,
    which the service decides once the note is read): a note on an exception."""

    permission_classes = [EvidenceReader]

    @extend_schema(responses=AuditorNoteSerializer(many=True), parameters=[
        OpenApiParameter("exception_key", str, description="Only the notes on this exception.")])
    def get(self, request):
        notes = AuditorNote.objects.select_related("author").order_by("created_at", "id")
        key = request.query_params.get("exception_key")
        if key is not None:
            refusal = exception_key_refusal(key)
            if refusal is not None:
                raise refusal
            notes = notes.filter(exception_key=key)
        return Response(AuditorNoteSerializer(notes, many=True).data)

    @extend_schema(request=AuditorNoteInputSerializer, responses={201: AuditorNoteSerializer})
    def post(self, request):
        given = AuditorNoteInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        note = auditor_note_add(actor=acting_user(request.user), **given.validated_data)
        return Response(AuditorNoteSerializer(note).data, status=status.HTTP_201_CREATED)
