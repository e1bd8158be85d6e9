"""Server-rendered pages: the chat (which talks to the REST API) and sign-up."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from chat.services import ensure_session
from inference.engine import get_manager
from inference.pipeline import curated


@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        ensure_session(request)
    # Opening the page starts loading the model in the background (a no-op once loaded), so it
    # is usually ready by the time the first question is typed.
    get_manager().start()
    curated.refresh()
    context = {
        "max_chars": settings.MEDBOT_MAX_QUESTION_CHARS,
        "emergency_number": settings.MEDBOT_EMERGENCY_NUMBER,
        "disclaimer": curated.disclaimer_text,
    }
    response = render(request, "chat/index.html", context)
    response["Cache-Control"] = "no-store"
    return response


def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = UserCreationForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("index")
    else:
        form = UserCreationForm()
    return render(request, "registration/signup.html", {"form": form})


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
