"""The admin for training data and adapter versions.

Training examples are curated here (bulk switches, JSON import and export). Training runs are a
record written by ``manage.py train``: read-only, with their loss curve, and one action that
matters — which run's adapter every server answers with (activate, and so roll back).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString

from inference.adapters import resolve_adapter_path
from training.data import DataError, import_examples
from training.models import TrainingExample, TrainingRun

# --- training examples -------------------------------------------------------------------------

IMPORT_MAX_BYTES = 20 * 1024 * 1024  # a few tens of thousands of pairs; bigger sets use the command


@admin.action(description="Enable selected examples", permissions=["change"])
def enable_examples(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    modeladmin.message_user(request, f"Enabled {queryset.update(enabled=True)} examples.", messages.SUCCESS)


@admin.action(description="Disable selected examples (left out of training)", permissions=["change"])
def disable_examples(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    modeladmin.message_user(request, f"Disabled {queryset.update(enabled=False)} examples.", messages.SUCCESS)


@admin.action(description="Export selected examples as JSON", permissions=["view"])
def export_examples(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    """The same shape the import reads, so an export can be edited and imported elsewhere."""
    rows = list(queryset.order_by("pk").values("question", "answer", "origin", "enabled"))
    return HttpResponse(
        json.dumps(rows, ensure_ascii=False, indent=2),
        content_type="application/json; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="medbot-training-examples.json"'},
    )


class ImportExamplesForm(forms.Form):
    file = forms.FileField(
        help_text="A JSON list of objects with question and answer (or input and output), or JSON Lines "
        "(.jsonl). Questions already present are skipped; a file with any error changes nothing."
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB; use manage.py import_training_data."
            )
        return upload


def import_upload(upload: Any) -> str:
    """Import an uploaded file through ``training.data`` (the same reading, de-duplication and
    all-or-nothing transaction as the command) and return its summary; raises DataError."""
    suffix = ".jsonl" if upload.name.lower().endswith(".jsonl") else ".json"
    with tempfile.TemporaryDirectory() as folder:
        stored = Path(folder) / f"upload{suffix}"
        with stored.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        try:
            return str(import_examples(stored))
        except DataError as error:
            # Name the file the curator chose, not our temporary copy.
            raise DataError(str(error).replace(str(stored), upload.name)) from error


@admin.register(TrainingExample)
class TrainingExampleAdmin(admin.ModelAdmin):
    actions = [enable_examples, disable_examples, export_examples]
    list_display = ["excerpt", "origin", "enabled", "created_at"]
    list_filter = ["origin", "enabled"]
    search_fields = ["question", "answer"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"

    @admin.display(description="Question", ordering="question")
    def excerpt(self, obj: TrainingExample) -> str:
        return obj.question if len(obj.question) <= 100 else obj.question[:97] + "…"

    def get_urls(self) -> list[URLPattern]:
        # Before the defaults: "<path:object_id>/" would swallow "import/".
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="training_trainingexample_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportExamplesForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                summary = import_upload(form.cleaned_data["file"])
            except DataError as error:
                form.add_error("file", f"{error}. Nothing was imported.")
            else:
                self.message_user(request, f"Imported {form.cleaned_data['file'].name}: {summary}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:training_trainingexample_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import training examples",
            "form": form,
        }
        return TemplateResponse(request, "admin/training/trainingexample/import.html", context)


# --- training runs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LossPoint:
    step: float
    train: float | None
    eval: float | None


def _number(value: object) -> float | None:
    """A finite float or None: loss_history is JSON, and only numbers go into the SVG."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def loss_points(history: object) -> list[LossPoint]:
    points = []
    if not isinstance(history, list):
        return points
    for index, entry in enumerate(history):
        if not isinstance(entry, dict):
            continue
        step = _number(entry.get("step"))
        point = LossPoint(
            step=step if step is not None else float(index),
            train=_number(entry.get("train_loss")),
            eval=_number(entry.get("eval_loss")),
        )
        if point.train is not None or point.eval is not None:
            points.append(point)
    return sorted(points, key=lambda point: point.step)


# Drawing area inside the SVG, in SVG units.
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 40, 16, 36  # room for the tick labels


def loss_curve_svg(history: object) -> SafeString:
    """The training and validation loss against step as an inline SVG, drawn on the server.

    Only numbers computed here reach the template (no text from the run), and the page's CSP
    forbids inline styles, so colours are SVG presentation attributes."""
    points = loss_points(history)
    values = [v for point in points for v in (point.train, point.eval) if v is not None]
    if not values:
        return render_to_string("admin/training/trainingrun/loss_curve.html", {"empty": True})
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    first, last = points[0].step, points[-1].step
    span = (last - first) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(step: float) -> float:
        return LEFT + (step - first) / span * plot_w if last != first else LEFT + plot_w / 2

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    def series(attribute: str) -> list[tuple[float, float]]:
        return [(x(p.step), y(getattr(p, attribute))) for p in points if getattr(p, attribute) is not None]

    def polyline(coords: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)

    train, evaluation = series("train"), series("eval")
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    context = {
        "empty": False,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "label_x": LEFT - 6,
        "label_y": HEIGHT - BOTTOM + 16,
        "train_points": polyline(train),
        "eval_points": polyline(evaluation),
        "train_dots": [{"x": f"{cx:.1f}", "y": f"{cy:.1f}"} for cx, cy in train],
        "eval_dots": [{"x": f"{cx:.1f}", "y": f"{cy:.1f}"} for cx, cy in evaluation],
        "y_ticks": [{"y": f"{y(value):.1f}", "label": f"{value:.3f}"} for value in ticks],
        "x_ticks": [{"x": f"{x(step):.1f}", "label": f"{step:g}"} for step in sorted({first, last})],
        "final_train": points[-1].train,
        "final_eval": points[-1].eval,
        "count": len(points),
    }
    return render_to_string("admin/training/trainingrun/loss_curve.html", context)


@dataclass(frozen=True)
class EvaluationRow:
    measure: str
    base: str
    adapter: str
    better: bool | None  # None: equal


MEASURES = (
    ("pass_rate", "Answers that pass the faithfulness gate", "{:.0%}", True),
    ("unsupported_share", "Sentences the passages do not support", "{:.1%}", False),
    ("rouge_l", "ROUGE-L against the reviewed answer", "{:.3f}", True),
)


def evaluation_rows(evaluation: dict[str, Any]) -> list[EvaluationRow]:
    """Base against adapter, one row per measure (empty when the run was not evaluated)."""
    base, adapter = evaluation.get("base"), evaluation.get("adapter")
    if not isinstance(base, dict) or not isinstance(adapter, dict):
        return []
    rows = []
    for key, label, form, higher_is_better in MEASURES:
        before, after = _number(base.get(key)), _number(adapter.get(key))
        if before is None or after is None:
            continue
        better = None if after == before else (after > before) == higher_is_better
        rows.append(EvaluationRow(label, form.format(before), form.format(after), better))
    return rows


def evaluation_html(evaluation: dict[str, Any]) -> SafeString:
    """The evaluation table, the verdict and the before/after answers: text escaped by the template."""
    verdict = evaluation.get("verdict") or {}
    samples = [s for s in evaluation.get("samples") or [] if isinstance(s, dict)]
    return render_to_string(
        "admin/training/trainingrun/evaluation.html",
        {
            "rows": evaluation_rows(evaluation),
            "questions": evaluation.get("questions"),
            "beats_base": bool(verdict.get("beats_base")),
            "reasons": verdict.get("reasons") or ["not evaluated"],
            "samples": samples,
        },
    )


MAX_REASON = 1000  # characters: a reason, not a document


@admin.action(description="Activate the selected run (servers switch to its adapter)", permissions=["change"])
def activate_run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
    """Activating an earlier run is the rollback. Workers compare the active run with the adapter
    they hold every few seconds and reload, so no restart is needed."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one run to activate.", messages.ERROR)
        return
    run = queryset.get()
    if run.status != TrainingRun.Status.SUCCEEDED:
        modeladmin.message_user(
            request,
            f"Run {run.pk} did not succeed ({run.get_status_display().lower()}); it cannot be activated.",
            messages.ERROR,
        )
        return
    folder = resolve_adapter_path(run.adapter_path) if run.adapter_path else None
    if folder is None or not (folder / "adapter_config.json").exists():
        # activate() would accept it, but every worker would log a warning and serve the base model.
        modeladmin.message_user(
            request,
            f"Run {run.pk} has no adapter at {folder or 'an empty path'}; it cannot be activated.",
            messages.ERROR,
        )
        return
    if not run.beats_base:
        # The evaluation found it worse than the base model (or there was none): a person may
        # still choose it, on a page that says why not, with a reason that is recorded.
        reason = request.POST.get("override_reason", "").strip() if "override" in request.POST else ""
        if len(reason) > MAX_REASON:
            modeladmin.message_user(request, f"Keep the reason under {MAX_REASON} characters.", messages.ERROR)
            reason = ""
        if not reason:
            return TemplateResponse(
                request,
                "admin/training/trainingrun/override.html",
                {
                    **modeladmin.admin_site.each_context(request),
                    "title": f"Activate run {run.pk} although it did not beat the base model?",
                    "run": run,
                    "refusal": run.refusal(),
                    "evaluation": evaluation_rows(run.evaluation),
                    "missing_reason": "override" in request.POST,
                    "opts": modeladmin.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        run.activate(force=True, reason=reason, by=request.user.get_username())
        modeladmin.log_change(request, run, f"Activated by override: {reason}")
        modeladmin.message_user(
            request,
            f"Run {run.pk} is now active by override (reason recorded): servers answer with its adapter "
            "within a few seconds.",
            messages.WARNING,
        )
        return None
    run.activate()
    modeladmin.log_change(request, run, "Activated.")
    modeladmin.message_user(
        request, f"Run {run.pk} is now active: servers answer with its adapter within a few seconds.", messages.SUCCESS
    )
    return None


@admin.action(description="Serve the base model (no adapter)", permissions=["change"])
def deactivate_runs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    """The way back when no trained adapter is good enough: no run active means the base model."""
    changed = TrainingRun.objects.filter(active=True).update(active=False)
    modeladmin.message_user(
        request,
        "Servers answer with the base model within a few seconds." if changed else "No run was active.",
        messages.SUCCESS if changed else messages.INFO,
    )


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Runs are written by ``manage.py train``: nobody adds or edits them here. The "change"
    permission is kept only so that it can gate the activate actions."""

    actions = [activate_run, deactivate_runs]
    list_display = [
        "__str__",
        "status",
        "active",
        "example_count",
        "final_train_loss",
        "final_validation_loss",
        "gate_pass_rate",
        "duration",
        "created_at",
    ]
    list_filter = ["status", "active", "base_model"]
    search_fields = ["base_model", "notes", "adapter_path"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "status",
                    "active",
                    "base_model",
                    "adapter_path",
                    "adapter_size_bytes",
                    "example_count",
                    "final_train_loss",
                    "final_validation_loss",
                    "duration",
                    "created_at",
                    "finished_at",
                    "notes",
                ]
            },
        ),
        ("Loss curve", {"fields": ["loss_curve"]}),
        ("Evaluation against the base model", {"fields": ["evaluation_report", "activation_override"]}),
        (
            "Training options",
            {
                "classes": ["collapse"],
                "fields": [
                    "lora_rank",
                    "lora_alpha",
                    "lora_dropout",
                    "target_modules",
                    "epochs",
                    "learning_rate",
                    "seed",
                    "config",
                    "loss_history",
                ],
            },
        ),
    ]
    readonly_fields = ["final_train_loss", "final_validation_loss", "duration", "loss_curve", "evaluation_report"]

    @admin.display(description="Train loss", ordering="train_loss")
    def final_train_loss(self, obj: TrainingRun) -> str:
        return "–" if obj.train_loss is None else f"{obj.train_loss:.3f}"

    @admin.display(description="Validation loss", ordering="validation_loss")
    def final_validation_loss(self, obj: TrainingRun) -> str:
        return "–" if obj.validation_loss is None else f"{obj.validation_loss:.3f}"

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, obj: TrainingRun) -> str:
        if obj.duration_seconds is None:
            return "–"
        minutes, seconds = divmod(int(obj.duration_seconds), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"

    @admin.display(description="Gate pass rate (base → adapter)")
    def gate_pass_rate(self, obj: TrainingRun) -> str:
        base, adapter = obj.evaluation.get("base"), obj.evaluation.get("adapter")
        if not isinstance(base, dict) or not isinstance(adapter, dict):
            return "not evaluated"
        return f"{base.get('pass_rate', 0):.0%} → {adapter.get('pass_rate', 0):.0%}"

    @admin.display(description="Held-out evaluation")
    def evaluation_report(self, obj: TrainingRun) -> SafeString:
        return evaluation_html(obj.evaluation)

    @admin.display(description="Loss curve")
    def loss_curve(self, obj: TrainingRun) -> SafeString:
        return loss_curve_svg(obj.loss_history)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        # Model-level "change" (obj None) gates the actions; a run's own page is view-only.
        return obj is None and super().has_change_permission(request)

    def get_deleted_objects(self, objs: Iterable[Model], request: HttpRequest) -> tuple[Any, ...]:
        """The active run cannot be deleted: servers would lose their adapter without anyone choosing that."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        active = [obj for obj in objs if getattr(obj, "active", False)]
        if active:
            protected = [*protected, f"{active[0]} — the active run: activate another run first"]
        return deleted, model_count, perms_needed, protected
