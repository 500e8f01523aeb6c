"""The Django admin shows every record. It never desynchronises records from disk: rows are
read-only here, and deleting goes through the engine's service functions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from engine import models
from engine.errors import EngineError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records are written by the engine only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ServiceDeleteAdmin(ReadOnlyAdmin):
    """Deletion allowed, but only through a service function, one object at a time."""

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.is_superuser)

    def service_delete(self, obj: object) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: object) -> None:
        try:
            self.service_delete(obj)
        except EngineError as exc:
            self.message_user(request, f"{obj}: {exc}", level=messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for obj in queryset:
            self.delete_model(request, obj)


class ImageLayerInline(admin.TabularInline):
    model = models.ImageLayer
    fields = ("position", "layer")
    readonly_fields = fields
    extra = 0
    can_delete = False


class ImageTagInline(admin.TabularInline):
    model = models.ImageTag
    fields = ("name", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(models.Image)
class ImageAdmin(ServiceDeleteAdmin):
    list_display = ("short_id", "tag_list", "architecture", "os", "size", "created", "loaded")
    list_filter = ("architecture", "os", "loaded")
    search_fields = ("id", "tags__name")
    inlines = [ImageTagInline, ImageLayerInline]

    @admin.display(description="tags")
    def tag_list(self, obj: models.Image) -> str:
        return ", ".join(t.name for t in obj.tags.all())

    def service_delete(self, obj: object) -> None:
        from engine.services import images

        images.remove(obj.id, force=True)  # type: ignore[attr-defined]


@admin.register(models.ImageTag)
class ImageTagAdmin(ReadOnlyAdmin):
    list_display = ("name", "image", "created")
    search_fields = ("name", "image__id")


@admin.register(models.RepoDigest)
class RepoDigestAdmin(ReadOnlyAdmin):
    list_display = ("name", "image")
    search_fields = ("name",)


@admin.register(models.Layer)
class LayerAdmin(ReadOnlyAdmin):
    list_display = ("chain_id", "diff_id", "media_type", "size", "blob_size", "created")
    list_filter = ("media_type",)
    search_fields = ("chain_id", "diff_id", "blob_digest")


@admin.register(models.Volume)
class VolumeAdmin(ServiceDeleteAdmin):
    list_display = ("name", "driver", "anonymous", "created", "created_by")
    list_filter = ("driver", "anonymous")
    search_fields = ("name",)

    def service_delete(self, obj: object) -> None:
        from engine.services import volumes

        volumes.remove(obj.name)  # type: ignore[attr-defined]


class MountInline(admin.TabularInline):
    model = models.Mount
    fields = ("kind", "source", "destination", "read_only")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(models.Container)
class ContainerAdmin(ReadOnlyAdmin):
    list_display = ("name", "short_id", "image_ref", "state", "exit_code", "created", "created_by")
    list_filter = ("state", "oom_killed", "created")
    search_fields = ("id", "name", "image_ref")
    inlines = [MountInline]


@admin.register(models.Mount)
class MountAdmin(ReadOnlyAdmin):
    list_display = ("container", "kind", "source", "destination", "read_only")
    list_filter = ("kind", "read_only")
    search_fields = ("container__name", "source", "destination")


@admin.register(models.ExecSession)
class ExecSessionAdmin(ReadOnlyAdmin):
    list_display = ("id", "container", "command", "tty", "created_by", "started_at", "ended_at", "exit_code")
    list_filter = ("tty", "started_at")
    search_fields = ("id", "container__name", "created_by")


@admin.register(models.Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("time", "actor", "action", "object_type", "object_name", "result")
    list_filter = ("object_type", "action", "result", "time")
    search_fields = ("actor", "object_name", "object_id", "message")


@admin.register(models.Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "title", "state", "created_by", "created", "finished")
    list_filter = ("kind", "state")
    search_fields = ("title", "created_by")


@admin.register(models.ContainerRevision)
class ContainerRevisionAdmin(ReadOnlyAdmin):
    list_display = ("name", "number", "action", "actor", "created", "container_id")
    list_filter = ("action", "created")
    search_fields = ("name", "container_id", "actor", "lineage")


@admin.register(models.AlertRule)
class AlertRuleAdmin(ServiceDeleteAdmin):
    list_display = ("name", "kind", "scope", "scope_value", "threshold", "minutes", "enabled", "created_by")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "scope_value")
    exclude = ("webhook_secret",)

    def service_delete(self, obj: object) -> None:
        from engine.services import alerts

        alerts.delete_rule(obj.pk)  # type: ignore[attr-defined]

    def get_deleted_objects(self, objs, request):  # type: ignore[no-untyped-def]
        # A rule's alerts and deliveries (read-only here) go with it, through the service.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request: HttpRequest, obj: object) -> None:
        from engine import events

        with events.acting_as(request.user.get_username()):  # the rule's delete event names the admin
            super().delete_model(request, obj)


@admin.register(models.Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("id", "rule", "subject_type", "subject_name", "state", "opened", "resolved", "seen")
    list_filter = ("state", "seen", "rule__kind")
    search_fields = ("rule__name", "subject_name", "subject_id", "message")


@admin.register(models.AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "alert", "channel", "transition", "state", "attempts", "next_attempt", "sent")
    list_filter = ("channel", "state", "transition")
    search_fields = ("target", "last_error")
