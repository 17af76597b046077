import os

from django.core.wsgi import get_wsgi_application

from governance.core.serving import refuse_without_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
refuse_without_secret_key()
application = get_wsgi_application()
