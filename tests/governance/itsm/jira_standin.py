"""A Jira Service Management site's customer request API (/rest/servicedeskapi), the part Changeboard uses, kept in
memory: `POST /request` (serviceDeskId, requestTypeId, requestFieldValues with a summary; 201 with issueId and
issueKey), `GET /request` (searchTerm matched in the summary, serviceDeskId), `GET /request/{idOrKey}`,
`GET|POST /request/{idOrKey}/transition` (a transition moves the request to its status, and is not offered from the
status it leads to; its additionalComment becomes a comment) and `GET /request/{idOrKey}/comment`, paged with start
and limit.

`writes` keeps every applied create and transition per change number (the summary's first word), in order, and
`applied_keys(number)` the idempotency keys of the transitions."""

import re

from governance.itsm.standin import Answer, StandIn

REQUEST_PATH = re.compile(r"/rest/servicedeskapi/request(?:/(?P<issue>[\w-]+)(?:/(?P<part>transition|comment))?)?/?")
UPDATE_KEY = re.compile(r"\(update ([^)]+)\)")
TRANSITIONS = {"11": "Waiting for approval", "21": "Approved", "31": "In progress", "41": "Done", "51": "Canceled"}


class JiraStandIn(StandIn):
    def __init__(self, *, service_desk_id: str = "7", request_type_id: str = "42", project_key: str = "CAB",
                 **credentials):
        super().__init__(**credentials)
        self.service_desk_id, self.request_type_id, self.project_key = service_desk_id, request_type_id, project_key
        self.issues: dict[str, dict] = {}
        self.writes: dict[str, list[dict]] = {}

    def requests_for(self, number: str) -> list[dict]:
        with self.lock:
            return [dict(issue) for issue in self.issues.values() if issue["summary"].split(":")[0] == number]

    def applied_keys(self, number: str) -> list[str]:
        """The idempotency keys of the transitions applied to the change's requests, in order (the connector writes
        each update's key in the transition's comment): a key twice is an update applied twice."""
        with self.lock:
            return [key.group(1) for write in self.writes.get(number, []) if write["operation"] == "transition"
                    for key in [UPDATE_KEY.search(write["comment"])] if key]

    def route(self, method, path, query, body, headers, raw):
        match = REQUEST_PATH.fullmatch(path)
        if not match:
            raise Answer(404, {"errorMessage": f"No resource at {path}"})
        with self.lock:
            if match["issue"] is None:
                if method == "POST":
                    return 201, self._shown(self._create(body))
                return 200, self._page(self._search(query), query)
            issue = self._issue(match["issue"])
            if match["part"] == "transition":
                if method == "POST":
                    self._transition(issue, body)
                    return 204, None
                return 200, self._page([{"id": id_, "name": name} for id_, name in TRANSITIONS.items()
                                        if name != issue["status"]], query)
            if match["part"] == "comment":
                return 200, self._page(issue["comments"], query)
            return 200, self._shown(issue)

    def _create(self, body) -> dict:
        if not isinstance(body, dict):
            raise Answer(400, {"errorMessage": "The request body is not a JSON object."})
        if str(body.get("serviceDeskId")) != self.service_desk_id:
            raise Answer(404, {"errorMessage": f"Service desk {body.get('serviceDeskId')} does not exist."})
        if str(body.get("requestTypeId")) != self.request_type_id:
            raise Answer(400, {"errorMessage": f"The request type {body.get('requestTypeId')} does not exist."})
        fields = body.get("requestFieldValues") or {}
        if not isinstance(fields, dict) or not fields.get("summary"):
            raise Answer(400, {"errorMessage": "summary: You must specify a summary of the issue."})
        number = len(self.issues) + 1
        issue = {"issueId": str(10000 + number), "issueKey": f"{self.project_key}-{number}",
                 "summary": fields["summary"], "description": fields.get("description", ""),
                 "status": "Waiting for support", "comments": []}
        self.issues[issue["issueId"]] = issue
        self._written(issue, {"operation": "create", "summary": issue["summary"]})
        return issue

    def _transition(self, issue: dict, body) -> None:
        transition = str((body or {}).get("id"))
        if transition not in TRANSITIONS or TRANSITIONS[transition] == issue["status"]:
            raise Answer(400, {"errorMessage": f"Transition {transition} is not valid for {issue['issueKey']} in "
                                               f"status {issue['status']}."})
        issue["status"] = TRANSITIONS[transition]
        comment = ((body or {}).get("additionalComment") or {}).get("body")
        if comment:
            issue["comments"].append({"id": str(len(issue["comments"]) + 1), "body": comment, "public": True})
        self._written(issue, {"operation": "transition", "transition": transition, "status": issue["status"],
                              "comment": comment or ""})

    def _written(self, issue: dict, entry: dict) -> None:
        self.writes.setdefault(issue["summary"].split(":")[0], []).append({"issueKey": issue["issueKey"], **entry})

    def _issue(self, id_or_key: str) -> dict:
        for issue in self.issues.values():
            if id_or_key in (issue["issueId"], issue["issueKey"]):
                return issue
        raise Answer(404, {"errorMessage": f"Request {id_or_key} does not exist or you do not have permission."})

    def _search(self, query: dict[str, str]) -> list[dict]:
        term = query.get("searchTerm", "").lower()
        desk = query.get("serviceDeskId")
        if desk is not None and desk != self.service_desk_id:
            return []
        return [self._shown(issue) for issue in self.issues.values() if term in issue["summary"].lower()]

    def _shown(self, issue: dict) -> dict:
        return {"issueId": issue["issueId"], "issueKey": issue["issueKey"], "serviceDeskId": self.service_desk_id,
                "requestTypeId": self.request_type_id, "currentStatus": {"status": issue["status"]},
                "requestFieldValues": [{"fieldId": "summary", "label": "Summary", "value": issue["summary"]},
                                       {"fieldId": "description", "label": "Description",
                                        "value": issue["description"]}]}

    @staticmethod
    def _page(values: list, query: dict[str, str]) -> dict:
        start, limit = int(query.get("start", 0)), int(query.get("limit", 50))
        page = values[start:start + limit]
        return {"size": len(page), "start": start, "limit": limit, "isLastPage": start + limit >= len(values),
                "values": page}
