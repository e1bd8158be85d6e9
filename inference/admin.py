from django.contrib import admin

from inference.models import AuditLog, Disclaimer, EmergencyRule, FallbackRule

admin.site.register(FallbackRule)
admin.site.register(EmergencyRule)
admin.site.register(Disclaimer)
admin.site.register(AuditLog)
