from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from celery.signals import before_task_publish, task_postrun, task_prerun
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from governance import checks  # noqa: F401  (registers the system checks)
        from governance.audit import context, signals
        from governance.audit import offers as audit_offers  # noqa: F401  (registers what pages may offer)
        from governance.audit.capture import install_after_migrate
        from governance.changes import offers as change_offers  # noqa: F401
        from governance.gate import facts
        from governance.gate import offers as gate_offers  # noqa: F401

        connection_created.connect(context.install_wrapper)
        post_migrate.connect(install_after_migrate, sender=self)
        post_migrate.connect(facts.install_after_migrate, sender=self)
        before_task_publish.connect(context.attach_actor_to_task)
        task_prerun.connect(context.enter_task_context)
        task_postrun.connect(context.leave_task_context)
        user_logged_in.connect(signals.record_login)
        user_logged_out.connect(signals.record_logout)
        user_login_failed.connect(signals.record_login_failed)
