from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat import api, views
from medbot_site import health

urlpatterns = [
    path("", views.index, name="index"),
    path("c/<int:pk>", views.conversation, name="conversation"),  # the chat, opened on one conversation
    path("ask", api.LegacyAskView.as_view(), name="legacy-ask"),
    path("api/v1/", include("chat.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar's static files, its start-up script from /api/docs/?script:
    # nothing inline and nothing from another origin, so the Content-Security-Policy stays as it is.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="chat/api_docs.html"),
        name="api-docs",
    ),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),  # throttled
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Only the auth pages MedBot uses: no password reset, since no email is sent (README "Security").
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
]

handler400 = "chat.views.bad_request"
handler404 = "chat.views.page_not_found"
handler500 = "chat.views.server_error"
