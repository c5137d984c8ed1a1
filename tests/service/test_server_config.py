"""`python -m service` listens where Settings say (HOST, PORT), as every other knob is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.__main__ import server_config
from service.app import create_app
from service.settings import Settings


def test_host_and_port_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(model_store=tmp_path, host="127.0.0.2", port=8123)
    config = server_config(create_app(settings), settings)
    assert (config.host, config.port) == ("127.0.0.2", 8123)


def test_host_and_port_are_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", "127.0.0.3")
    monkeypatch.setenv("PORT", "8124")
    settings = Settings(model_store=tmp_path, _env_file=None)  # type: ignore[call-arg]
    config = server_config(create_app(settings), settings)
    assert (config.host, config.port) == ("127.0.0.3", 8124)


def test_host_and_port_default_to_every_interface_on_8000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    settings = Settings(model_store=tmp_path, _env_file=None)  # type: ignore[call-arg]
    config = server_config(create_app(settings), settings)
    assert (config.host, config.port) == ("0.0.0.0", 8000)


def test_a_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "70000")
    with pytest.raises(ValueError, match="port"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_body_and_send_timeouts_reach_the_protocol_and_must_be_positive(
    tmp_path: Path,
) -> None:
    settings = Settings(
        model_store=tmp_path, body_timeout_s=7.5, header_timeout_s=9, send_timeout_s=11
    )
    config = server_config(create_app(settings), settings)
    limits = config.http.limits  # type: ignore[union-attr]
    assert (limits.body_timeout_s, limits.timeout_s, limits.send_timeout_s) == (7.5, 9, 11)
    for name in ("body_timeout_s", "send_timeout_s"):
        with pytest.raises(ValueError, match=name):
            Settings(model_store=tmp_path, **{name: 0})


def test_cors_origins_are_read_as_a_browser_sends_them(tmp_path: Path) -> None:
    settings = Settings(
        model_store=tmp_path, cors_allow_origins=" https://App.Example.com, http://[::1]:8080 "
    )
    assert settings.cors_origins == ("https://app.example.com", "http://[::1]:8080")
    assert Settings(model_store=tmp_path, cors_allow_origins="*").cors_origins == ("*",)
    for unset in ("", " ", None):
        assert Settings(model_store=tmp_path, cors_allow_origins=unset).cors_origins == ()
    # The browser's Origin has no path: one written with a slash or a path would never match.
    with pytest.raises(ValidationError, match="no trailing slash"):
        Settings(model_store=tmp_path, cors_allow_origins="https://app.example.com/")
    for wrong in ("app.example.com", "https://app.example.com/ui", "null"):
        with pytest.raises(ValidationError, match="not an origin as a browser sends it"):
            Settings(model_store=tmp_path, cors_allow_origins=wrong)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--port", "9000"], "set PORT in the environment instead (PORT=9000 python -m service)"),
        (["--host=127.0.0.1"], "HOST=127.0.0.1 python -m service"),
        (["--root-path", "/kexue"], "uvicorn --factory service.app:create_app --root-path"),
        (["model_store"], "it takes no arguments, not 'model_store'"),
    ],
)
def test_arguments_are_refused_not_ignored(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `python -m service --port 9000` served on 8000: the arguments were never read.
    from service.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_help_says_where_the_settings_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    from service.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    assert "every setting comes from the environment" in capsys.readouterr().out
