from django.contrib import admin

from training.models import TrainingExample, TrainingRun

admin.site.register(TrainingExample)
admin.site.register(TrainingRun)
