from django.urls import path

from governance.itsm import views_incidents, views_outbox

app_name = "itsm"
urlpatterns = [
    path("itsm/connectors/", views_outbox.connector_list, name="connector_list"),
    path("itsm/outbox/<int:pk>/retry/", views_outbox.outbox_message_retry, name="outbox_retry"),
    path("itsm/incidents/", views_incidents.incident_list, name="incident_list"),
    path("itsm/incidents/<int:pk>/", views_incidents.incident_detail, name="incident_detail"),
    path("itsm/incidents/<int:pk>/suspects/<int:sid>/confirm/", views_incidents.suspect_decision,
         {"decision": "confirm"}, name="suspect_confirm"),
    path("itsm/incidents/<int:pk>/suspects/<int:sid>/dismiss/", views_incidents.suspect_decision,
         {"decision": "dismiss"}, name="suspect_dismiss"),
    path("itsm/suspects/deployment/<str:number>/", views_incidents.deployment_suspects, name="deployment_suspects"),
    path("itsm/suspects/change/<str:number>/", views_incidents.change_suspects, name="change_suspects"),
]
