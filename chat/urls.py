from django.urls import include, path
from rest_framework.routers import DefaultRouter

from chat import api

# Slashes optional: /conversations/1/export?format=md and /conversations/1/export/ both work.
router = DefaultRouter()
router.trailing_slash = "/?"
router.include_root_view = False
router.include_format_suffixes = False
router.register("conversations", api.ConversationViewSet, basename="conversation")

urlpatterns = [
    path("ask", api.AskView.as_view(), name="api-ask"),
    path("messages/<int:pk>/feedback", api.FeedbackView.as_view(), name="api-feedback"),
    path("", include(router.urls)),
]
