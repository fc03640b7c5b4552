"""Imaging fixtures: tiny random-weight models saved and registered through the real code paths, upload helpers."""

from __future__ import annotations

import pytest

from tests.imaging.tiny_models import save_tiny_models


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def tiny_models(db, settings, tiny_model_dirs):
    """Both tiny models registered and active; IMAGING_MODELS_DIR points at them."""
    from imaging.services import model_register

    settings.IMAGING_MODELS_DIR = tiny_model_dirs["root"]
    settings.IMAGING_BATCH_SIZE = 4
    return {"image": model_register(model_dir=tiny_model_dirs["image"]),
            "series": model_register(model_dir=tiny_model_dirs["series"])}


@pytest.fixture
def clinician(org, make_member):
    from accounts.capabilities import Role

    return make_member(org, Role.CLINICIAN)


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.fixture
def upload_temp_dir(settings, tmp_path, monkeypatch):
    """FILE_UPLOAD_TEMP_DIR in an empty folder, plus a record of every temporary upload file Django creates and of what
    the folder held while the upload service ran (a temporary upload file is deleted when its request ends)."""
    from types import SimpleNamespace

    from django.core.files import uploadhandler

    from imaging import uploads

    directory = tmp_path / "upload-tmp"
    directory.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(directory)
    record = SimpleNamespace(path=directory, created=[], seen=[])
    real_file, real_add = uploadhandler.TemporaryUploadedFile, uploads._add_items

    def temporary_file(*args, **kwargs):
        record.created.append(args[:1] or kwargs.get("name"))
        return real_file(*args, **kwargs)

    def add_items(**kwargs):
        record.seen.append(sorted(p.name for p in directory.iterdir()))
        return real_add(**kwargs)

    monkeypatch.setattr(uploadhandler, "TemporaryUploadedFile", temporary_file)
    monkeypatch.setattr(uploads, "_add_items", add_items)
    return record
