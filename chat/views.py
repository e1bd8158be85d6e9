"""Server-rendered pages: the chat (which talks to the REST API) and sign-up."""

from __future__ import annotations

import sys

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.views.decorators.csrf import ensure_csrf_cookie

from chat import ownership, ratelimits
from chat.forms import ThrottledAuthenticationForm, in_minutes
from chat.models import Conversation
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
    return chat_page(request)


@ensure_csrf_cookie
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    """The chat opened on one conversation (``/c/<id>``): its owner's link to it; 404 for anyone else."""
    owned = Conversation.objects.owned_by(request.user, ownership.owner_key(request.session))
    return chat_page(request, get_object_or_404(owned, pk=pk))


def chat_page(request: HttpRequest, open_conversation: Conversation | None = None) -> HttpResponse:
    # Opening the page starts loading the model in the background (a no-op once loaded), so it
    # is usually ready by the time the first question is typed.
    get_manager().start()
    context = {
        "max_chars": settings.MEDBOT_MAX_QUESTION_CHARS,
        "emergency_number": settings.MEDBOT_EMERGENCY_NUMBER,
        "disclaimer": current_disclaimer(),
        "conversation": open_conversation,
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


def _status_page(template: str, status: int) -> HttpResponse:
    # Rendered without the request: its context processors could touch the session or the
    # database, either of which may be what failed (or carry the bad Host header).
    return HttpResponse(loader.render_to_string(template), status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's own 400s, raised before any view runs: a Host header not in ALLOWED_HOSTS
    (DisallowedHost), a body over DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig, a 413 here),
    too many form fields. API clients get JSON like every other API error."""
    if isinstance(exception, RequestDataTooBig):
        status, detail, template = 413, "The request body is too large.", "413.html"
    else:
        status, detail, template = 400, "Bad request.", "400.html"
    if _is_api(request):
        return JsonResponse({"detail": detail}, status=status)
    return _status_page(template, status)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls handler500 from inside its except block, so the error is still at hand.
    if isinstance(sys.exc_info()[1], DatabaseError):
        # The database is down or unreachable: a 503 tells people and load balancers to come back.
        if _is_api(request):
            response = JsonResponse({"detail": "MedBot's database is unavailable. Try again shortly."}, status=503)
        else:
            response = _status_page("503.html", 503)
        response["Retry-After"] = "30"
        return response
    if _is_api(request):
        return JsonResponse({"detail": "Server error. Your question, if any, was saved."}, status=500)
    return render(request, "500.html", status=500)
