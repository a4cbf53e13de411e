"""The kept result of the "Fine-tune models" dock and what can be done with it: Save as..., Export to
bioimage.io..., Use this model. A new run replaces the kept result only when it gives a new model
(``offer``), so a failed, stopped or unimproved run never loses an unsaved result; a model at chance
is marked, saved with its warning, and Use asks twice. Saving the result that is in use renames the
active model after its file.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from magicgui.widgets import Container, PushButton, show_file_dialog

from ..preprocess import InputError
from ._jobs import in_background, notify_error, wrapped_label
from ._state import STATE


class KeptModel(Container):
    def __init__(self, log, running) -> None:
        self._log, self._running = log, running
        self.target = wrapped_label()
        self.save_button, self.use_button = PushButton(text="Save as..."), PushButton(text="Use this model")
        self.export_button = PushButton(text="Export to bioimage.io...", tooltip=(
            "Write a bioimage.io model package (.zip) that bioimage.io tools (and napari-organelle) run."))
        row = Container(widgets=[self.save_button, self.export_button], layout="horizontal", labels=False)
        row.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self.target, row, self.use_button], labels=False)
        self.margins = (0, 0, 0, 0)
        self.outcome = None  # the recipes.FineTuneOutcome these buttons act on
        self.saved_path = self.used_model = self._used_outcome = self._use_armed = self._export_worker = None
        self.save_button.changed.connect(lambda *_: self.save_as())
        self.use_button.changed.connect(lambda *_: self.use_model())
        self.export_button.changed.connect(lambda *_: self.export())
        self.refresh()

    def offer(self, outcome) -> None:
        """A run gave a new model: the buttons now act on it."""
        self.outcome, self.saved_path, self._use_armed = outcome, None, None
        self.refresh()

    def target_text(self) -> str:
        """Which model Save as... / Use this model act on (shown above the buttons)."""
        o = self.outcome
        if o is None:
            return "No model to save or use yet: train one first."
        best = o.result.best_event
        score = (f", val accuracy {best.val_acc:.1%}" if best is not None and best.val_acc is not None else
                 f", val PSNR {best.val_psnr:.1f} dB" if best is not None and best.val_psnr is not None else "")
        state = [f"saved as {self.saved_path}" if self.saved_path else "not saved yet"]
        if self.used_model is not None and self._used_outcome is o and STATE.peek(o.kind) is self.used_model:
            state.append("in use")
        if self._running():
            state.append("a new run replaces it only if it gives a new model")
        if o.warning:
            state.append("AT CHANCE")
        return f"Save as... / Use this model act on: {o.name} (best epoch {o.result.best_epoch}{score}; " \
               + "; ".join(state) + ")."

    def refresh(self) -> None:
        self.target.value = self.target_text()
        self.save_button.enabled = self.use_button.enabled = self.export_button.enabled = self.outcome is not None
        self.use_button.text = "Use anyway (at chance)" if self._use_armed is self.outcome is not None else \
            "Use this model"

    def checkpoint(self) -> dict:
        o = self.outcome
        if o is None:
            raise InputError("Train a model first (press Train); there is nothing to save yet.")
        training = {**o.checkpoint.get("training", {}), "name": o.name}
        if o.warning:
            training["warning"] = o.warning
        return {**o.checkpoint, "training": training}

    def save_as(self, path=None) -> Path | None:
        """Ask for a file (default: the user model folder) and write the checkpoint atomically."""
        from ..checkpoints import user_models_dir, write_checkpoint_dict

        o = self.outcome  # the result being saved: a run may finish while the dialog is open
        try:
            ckpt = self.checkpoint()
            asked = path is None
            if asked:
                folder = user_models_dir()
                folder.mkdir(parents=True, exist_ok=True)  # where every dock and `napari-organelle models` look
                path = show_file_dialog(mode="w", caption="Save the fine-tuned model", filter="napari-organelle model "
                                        "(*.pt)", start_path=str(folder / f"finetuned-{o.kind}-{time.strftime('%Y%m%d-%H%M%S')}.pt"))
                if not path:
                    return None
            path = Path(path)
            if path.suffix != ".pt":  # the dialog checked the name as typed; the file written is NAME.pt
                path = path.with_name(path.name + ".pt")
                if asked and path.exists() and not self._confirm_overwrite(path):
                    return None
            out = write_checkpoint_dict(path, {**ckpt, "training": {**ckpt["training"], "name": path.stem}})
        except Exception as exc:  # noqa: BLE001
            notify_error(exc, "Saving the model")
            return None
        STATE.models_changed.emit(o.kind)
        if self.outcome is not o:  # a newer result arrived meanwhile: it is not the one saved
            self._announce(f"Saved the previous result ({o.name}) to {out}; the new one is not saved yet.")
            return out
        self.saved_path = out
        used = self.used_model
        if used is not None and self._used_outcome is o and STATE.peek(o.kind) is used:
            # the saved result is the active model: it takes the file's name and path (same weights)
            meta = {**(used.meta or {}), "training": {**dict(used.meta.get("training") or {}), "name": out.stem}}
            self.used_model = dataclasses.replace(used, name=out.stem, path=out, meta=meta)
            STATE.set_active(o.kind, self.used_model)
        self._announce(f"Saved the fine-tuned {o.kind} to {out}" + (f"; the {o.kind} docks now show it as {out.stem}"
                                                                     if self.used_model is not used else "") + ".")
        return out

    def export(self, path=None):
        """Ask for a .zip and write the kept result as a bioimage.io package in the background (the export
        runs the model to check the package); returns the worker, or None."""
        o = self.outcome
        try:
            ckpt = self.checkpoint()
            path = path or show_file_dialog(mode="w", caption="Export to bioimage.io", filter="bioimage.io "
                                            "package (*.zip)", start_path=f"{o.name.replace(':', '')}.zip")
            if not path:
                return None
            path = Path(path) if str(path).lower().endswith(".zip") else Path(f"{path}.zip")
        except Exception as exc:  # noqa: BLE001
            notify_error(exc, "Exporting the model")
            return None

        def export(out):
            from ..export import export_bioimageio

            return export_bioimageio(ckpt, out, name=o.name.replace(":", "h"), overwrite=True)

        self.export_button.enabled = False
        self._log(f"Exporting {o.name} to {path} ...")

        def done(result):
            self.export_button.enabled = True
            self._announce(f"Exported {o.name} to {result.path} (a bioimage.io package; napari-organelle loads it "
                           "too: Load from file...).")

        def failed(exc):
            self.export_button.enabled = True
            notify_error(exc, "Exporting the model")

        self._export_worker = in_background(export, done, path, on_error=failed)
        return self._export_worker

    def _confirm_overwrite(self, path: Path) -> bool:
        from qtpy.QtWidgets import QMessageBox  # magicgui has no yes / no question

        return QMessageBox.question(self.native, "Replace model?", f"{path.name} already exists in {path.parent}. "
                                    "Replace it?") == QMessageBox.StandardButton.Yes

    def use_model(self):
        """Make the fine-tuned model the active one (a fresh copy). A model at chance needs a second press."""
        from ..checkpoints import load_checkpoint

        o = self.outcome
        if o is not None and o.warning and self._use_armed is not o:
            self._use_armed = o
            notify_error(InputError(f"{o.warning} Press 'Use anyway' to use it all the same."), "Fine-tuning")
            self.refresh()
            return None
        try:
            name = self.saved_path.stem if self.saved_path is not None else o.name if o else ""
            loaded = load_checkpoint(self.checkpoint(), expected_kind=o.kind, name=name)
        except Exception as exc:  # noqa: BLE001
            notify_error(exc, "Using the model")
            return None
        loaded.path = self.saved_path
        self.used_model, self._used_outcome = loaded, o
        STATE.set_active(o.kind, loaded)
        unsaved = "" if self.saved_path is not None else " (not saved yet: Save as... keeps it)"
        self._announce(f"The {o.kind} docks now use {loaded.name}{unsaved}.")
        return loaded

    def _announce(self, notice: str) -> None:
        from napari.utils.notifications import show_info

        self._log(notice)
        show_info(notice)
        self.refresh()
