"""The Modal backend: a cell becomes a Modal app (a GPU class plus a web function)."""

from nbserve.backends.modal.app import ModalCellApp, build_modal_app, build_modal_parts

__all__ = ["ModalCellApp", "build_modal_app", "build_modal_parts"]
