"""Server-rendered pages: the chat (which talks to the REST API) and sign-up."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from chat import ownership, ratelimits
from chat.forms import ThrottledAuthenticationForm, in_minutes
from chat.services import ensure_session
from inference.engine import get_manager
from inference.pipeline import current_disclaimer


@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated and ownership.owner_key(request.session) is None:
        # A session is a row: a page load makes one only under the per-address limit. Past it
        # the page still works, and the session is made with the visitor's first question.
        rate = settings.MEDBOT_NEW_SESSION_RATE
        if ratelimits.hit(request, ratelimits.NEW_SESSIONS, rate, ratelimits.ip_key) is None:
            ensure_session(request)
    # Opening the page starts loading the model in the background (a no-op once loaded), so it
    # is usually ready by the time the first question is typed.
    get_manager().start()
    context = {
        "max_chars": settings.MEDBOT_MAX_QUESTION_CHARS,
        "emergency_number": settings.MEDBOT_EMERGENCY_NUMBER,
        "disclaimer": current_disclaimer(),
    }
    response = render(request, "chat/index.html", context)
    response["Cache-Control"] = "no-store"
    return response


def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = UserCreationForm(request.POST)
        # Every attempt counts, per address: new accounts must not be a way round the ask limit.
        wait = ratelimits.hit(request, ratelimits.SIGNUPS, settings.MEDBOT_SIGNUP_RATE, ratelimits.ip_key)
        if wait is not None:
            form.is_valid()  # bound, so the error below shows
            form.add_error(None, f"Too many new accounts from your network. Try again in {in_minutes(wait)}.")
            response = render(request, "registration/signup.html", {"form": form}, status=429)
            response["Retry-After"] = str(wait)
            return response
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("index")
    else:
        form = UserCreationForm()
    return render(request, "registration/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    """Django's log-in page, refusing attempts past the failed-login limits with a 429."""

    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form: ThrottledAuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.throttled_for is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled_for)
        return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/ask"))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Server error. Your question, if any, was saved."}, status=500)
    return render(request, "500.html", status=500)
