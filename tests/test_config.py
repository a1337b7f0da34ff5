"""SecurityConfig validation: every bad field reported at once, defaults, later-release fields."""

from __future__ import annotations

from typing import Any

import pytest
from flask_rampart import ConfigError, SecurityConfig


def config_errors(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(**fields)
    errors = [(str(field), str(message)) for field, message in excinfo.value.errors]
    assert errors, "ConfigError raised with an empty .errors list"
    return errors


def error_fields(**fields: Any) -> list[str]:
    return [field for field, _ in config_errors(**fields)]


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        SecurityConfig(trusted_proxy_depth=0)


def test_every_bad_field_is_reported_at_once() -> None:
    errors = config_errors(
        blacklist=["10.0.0.1", "10.0.0.300"],
        trusted_proxy_depth=0,
        trusted_proxies=["0.0.0.0/0"],
        security_headers={"custom": {"X-Evil": "a\r\nSet-Cookie: x=1", "Bad Header": "v"}},
        rate_limt=5,
        blocked_user_agents=["curl", "(?=lookahead)"],
        log_suspicious_level="LOUD",
        cors_max_age=-1,
        custom_request_check="not callable",
    )
    fields = [field for field, _ in errors]
    assert "blacklist[1]" in fields
    assert "trusted_proxy_depth" in fields
    assert any(f.startswith("trusted_proxies") for f in fields)
    assert "security_headers.custom.X-Evil" in fields
    assert any(f.startswith("security_headers.custom") and "X-Evil" not in f for f in fields)
    assert "rate_limt" in fields
    assert any(f.startswith("blocked_user_agents") for f in fields)
    assert "log_suspicious_level" in fields
    assert "cors_max_age" in fields
    assert "custom_request_check" in fields
    assert len(errors) >= 10
    # the valid entries are not reported
    assert "blacklist[0]" not in fields
    assert "blocked_user_agents[0]" not in fields


def test_error_message_lists_the_fields() -> None:
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(blacklist=["10.0.0.1", "10.0.0.300"], rate_limt=5)
    text = str(excinfo.value)
    assert "blacklist[1]" in text
    assert "10.0.0.300" in text
    assert "rate_limt" in text


def test_bad_cidr_names_the_list_index() -> None:
    errors = config_errors(blacklist=["10.0.0.1", "10.0.0.300"])
    assert [field for field, _ in errors] == ["blacklist[1]"]
    assert "10.0.0.300" in errors[0][1]


def test_unknown_field_suggests_the_closest_name() -> None:
    errors = config_errors(rate_limt=5)
    assert [field for field, _ in errors] == ["rate_limt"]
    assert "did you mean 'rate_limit'?" in errors[0][1]


def test_header_injection_in_custom_header_value() -> None:
    errors = config_errors(security_headers={"custom": {"X-Evil": "a\r\nSet-Cookie: x=1"}})
    assert [field for field, _ in errors] == ["security_headers.custom.X-Evil"]


@pytest.mark.parametrize(
    ("fields", "expected_prefix"),
    [
        pytest.param({"blacklist": ["nope"]}, "blacklist", id="blacklist-garbage"),
        pytest.param({"blacklist": ["10.0.0.0/33"]}, "blacklist", id="blacklist-bad-prefix"),
        pytest.param({"blacklist": ["2001:db8::/129"]}, "blacklist", id="blacklist-bad-v6-prefix"),
        pytest.param({"whitelist": ["300.1.1.1"]}, "whitelist", id="whitelist"),
        pytest.param({"emergency_whitelist": ["x"]}, "emergency_whitelist", id="emergency-wl"),
        pytest.param({"trusted_proxies": ["10.0.0.256"]}, "trusted_proxies", id="proxy-bad"),
        pytest.param({"trusted_proxies": ["0.0.0.0/0"]}, "trusted_proxies", id="proxy-v4-any"),
        pytest.param({"trusted_proxies": ["::/0"]}, "trusted_proxies", id="proxy-v6-any"),
        pytest.param({"trusted_proxy_depth": 0}, "trusted_proxy_depth", id="depth-zero"),
        pytest.param({"trusted_proxy_depth": -1}, "trusted_proxy_depth", id="depth-negative"),
        pytest.param(
            {"security_headers": {"custom": {"X-Evil": "a\nb"}}},
            "security_headers.custom.X-Evil",
            id="header-lf",
        ),
        pytest.param(
            {"security_headers": {"custom": {"X-Evil": "a\rb"}}},
            "security_headers.custom.X-Evil",
            id="header-cr",
        ),
        pytest.param(
            {"security_headers": {"custom": {"X-Evil": "a\x00b"}}},
            "security_headers.custom.X-Evil",
            id="header-nul",
        ),
        pytest.param(
            {"security_headers": {"custom": {"X-Long": "a" * 8193}}},
            "security_headers.custom.X-Long",
            id="header-too-long",
        ),
        pytest.param(
            {"security_headers": {"custom": {"Bad Header": "v"}}},
            "security_headers.custom",
            id="header-name-space",
        ),
        pytest.param(
            {"security_headers": {"custom": {"X-Bad:Name": "v"}}},
            "security_headers.custom",
            id="header-name-colon",
        ),
        pytest.param(
            {"security_headers": {"referrer_policy": "no-referrer\r\nX-Injected: 1"}},
            "security_headers",
            id="builtin-header-crlf",
        ),
        pytest.param(
            {
                "security_headers": {
                    "hsts": {
                        "max_age": 86400,
                        "include_subdomains": True,
                        "preload": True,
                    }
                }
            },
            "security_headers.hsts",
            id="hsts-preload-short",
        ),
        pytest.param(
            {
                "security_headers": {
                    "hsts": {
                        "max_age": 31536000,
                        "include_subdomains": False,
                        "preload": True,
                    }
                }
            },
            "security_headers.hsts",
            id="hsts-preload-no-subdomains",
        ),
        pytest.param(
            {"security_headers": {"frame_options": "ALLOW-FROM https://x.example"}},
            "security_headers",
            id="frame-options",
        ),
        pytest.param({"rate_limt": 5}, "rate_limt", id="unknown-field"),
        pytest.param({"blocked_user_agents": ["("]}, "blocked_user_agents", id="regex-invalid"),
        pytest.param(
            {"blocked_user_agents": ["(?=bot)"]},
            "blocked_user_agents",
            id="regex-lookahead",
        ),
        pytest.param(
            {"blocked_user_agents": ["(?<!good)bot"]},
            "blocked_user_agents",
            id="regex-lookbehind",
        ),
        pytest.param(
            {"blocked_user_agents": [r"(a)\1"]},
            "blocked_user_agents",
            id="regex-backref",
        ),
        pytest.param({"log_suspicious_level": "LOUD"}, "log_suspicious_level", id="log-level"),
        pytest.param({"log_request_level": "VERBOSE"}, "log_request_level", id="request-level"),
        pytest.param({"log_format": "xml"}, "log_format", id="log-format"),
        pytest.param({"cors_max_age": -1}, "cors_max_age", id="cors-max-age"),
        pytest.param({"custom_request_check": "nope"}, "custom_request_check", id="check"),
        pytest.param({"custom_response_modifier": 42}, "custom_response_modifier", id="modifier"),
    ],
)
def test_bad_field_is_rejected(fields: dict[str, Any], expected_prefix: str) -> None:
    found = error_fields(**fields)
    assert any(f.startswith(expected_prefix) for f in found), found


def test_agent_fields_refuse_non_off_values() -> None:
    assert "enable_agent" in error_fields(enable_agent=True)


@pytest.mark.parametrize("field", ["blocked_countries", "whitelist_countries"])
def test_country_rules_without_a_geolocation_source_are_refused(field: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(**{field: ["CN"]})
    assert [f for f, _ in excinfo.value.errors] == [field]
    assert "geo_ip_handler" in str(excinfo.value)


def test_later_release_fields_accept_their_off_value() -> None:
    config = SecurityConfig(
        rate_limit=None,
        enable_redis=False,
        blocked_countries=[],
        enable_penetration_detection=False,
        enable_agent=False,
    )
    assert config.enable_redis is False
    assert config.rate_limit is None
    assert list(config.blocked_countries) == []


def test_defaults() -> None:
    config = SecurityConfig()
    assert config.exclude_paths == [
        "/docs",
        "/redoc",
        "/openapi.json",
        "/openapi.yaml",
        "/favicon.ico",
        "/static",
    ]
    assert config.trusted_proxies == []
    assert config.trusted_proxy_depth == 1
    assert config.trust_x_forwarded_proto is True
    assert config.blacklist == []
    assert config.whitelist is None
    assert config.emergency_mode is False
    assert config.passive_mode is False
    assert config.enforce_https is False
    assert config.blocked_user_agents == []
    assert config.enable_cors is False
    assert config.cors_allow_origins == ["*"]
    assert config.cors_max_age == 600
    assert config.cors_allow_credentials is False
    assert config.fail_secure is True
    assert config.log_suspicious_level == "WARNING"
    assert config.log_request_level is None
    assert config.log_format == "text"
    assert config.custom_log_file is None
    assert config.custom_request_check is None


def test_explicit_values_are_returned() -> None:
    def check(_req: Any) -> None:
        return None

    config = SecurityConfig(
        blacklist=["10.0.0.1", "2001:db8::/32"],
        whitelist=[],
        trusted_proxies=["10.0.0.0/8"],
        trusted_proxy_depth=2,
        cors_max_age=0,
        custom_request_check=check,
        exclude_paths=["/health"],
    )
    assert config.blacklist == ["10.0.0.1", "2001:db8::/32"]
    assert config.whitelist == []
    assert config.trusted_proxies == ["10.0.0.0/8"]
    assert config.trusted_proxy_depth == 2
    assert config.cors_max_age == 0
    assert config.custom_request_check is check
    assert config.exclude_paths == ["/health"]


def test_a_rich_valid_config_is_accepted() -> None:
    SecurityConfig(
        blacklist=["203.0.113.0/24", "2001:db8::1", "2001:db8:abcd::/48"],
        whitelist=["192.168.1.0/24"],
        emergency_whitelist=["10.0.0.1"],
        trusted_proxies=["10.0.0.1", "fd00::/8"],
        trusted_proxy_depth=3,
        blocked_user_agents=["curl", r"python-requests/\d+", "(?i)^bot$"],
        security_headers={
            "hsts": {"max_age": 63072000, "include_subdomains": True, "preload": True},
            "csp": {"default-src": ["'self'"], "script-src": ["'self'"]},
            "csp_nonce_in": ["script-src"],
            "frame_options": "DENY",
            "referrer_policy": None,
            "custom": {"X-Custom": "value with spaces; and=stuff"},
        },
        log_suspicious_level="ERROR",
        log_request_level="INFO",
        log_format="json",
        enable_cors=True,
        cors_allow_origins=["https://*.example.com", "https://app.example.org"],
        cors_allow_credentials=True,
        cors_max_age=0,
        custom_error_responses={403: "Go away", 503: "Later"},
        custom_request_check=lambda req: None,
        custom_response_modifier=lambda resp: resp,
        fail_secure=False,
    )


def test_security_headers_none_and_csp_string_are_accepted() -> None:
    SecurityConfig(security_headers=None)
    SecurityConfig(security_headers={"enabled": False})
    SecurityConfig(security_headers={"csp": "default-src 'none'"})


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        (
            {"block_cloud_providers": {"AWS", "DigitalOcean"}},
            "block_cloud_providers[1]",
            "unknown cloud provider",
        ),
        ({"rate_limit_window": -5}, "rate_limit_window", "whole number"),
        ({"auto_ban_duration": 0}, "auto_ban_duration", "whole number"),
        ({"blocked_countries": ["USA"]}, "blocked_countries[0]", "country code"),
    ],
)
def test_later_release_fields_get_a_specific_reason_for_impossible_values(
    fields: dict[str, Any], field: str, reason: str
) -> None:
    errors = dict(config_errors(**fields))
    assert field in errors, errors
    assert reason in errors[field]


def test_config_error_pickles_with_its_errors() -> None:
    import pickle

    with pytest.raises(ConfigError) as excinfo:
        SecurityConfig(blacklist=["nope"])
    again = pickle.loads(pickle.dumps(excinfo.value))
    assert isinstance(again, ConfigError)
    assert again.errors == excinfo.value.errors
    assert str(again) == str(excinfo.value)
