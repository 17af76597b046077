from django.urls import path

from governance.itsm import views_outbox

app_name = "itsm"
urlpatterns = [
    path("itsm/connectors/", views_outbox.connector_list, name="connector_list"),
    path("itsm/outbox/<int:pk>/retry/", views_outbox.outbox_message_retry, name="outbox_retry"),
]
