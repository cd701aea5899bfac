"""The SASL mechanisms, sans-IO: JAAS strings, PLAIN, SCRAM (RFC 7677's vector), OAUTHBEARER."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from kafkapy.security import jaas
from kafkapy.security.oauthbearer import (
    JwksSource,
    OAuthBearerServer,
    SignedValidator,
    UnsecuredValidator,
    client_response,
    parse_client_response,
    unsecured_token,
)
from kafkapy.security.sasl_base import SaslFailure, client_message
from kafkapy.security.sasl_plain import PlainServer, plain_client_token
from kafkapy.security.scram import (
    MECHANISMS,
    ScramClient,
    ScramServer,
    decode_saslname,
    encode_saslname,
    make_credential,
)

# ---------------------------------------------------------------- JAAS


def test_jaas_plain_entry() -> None:
    entry = jaas.parse_single(
        'org.apache.kafka.common.security.plain.PlainLoginModule required\n  username="admin" '
        'password="a\\"b\\\\c" user_admin="admin-secret" user_alice=alice-pw;'
    )
    assert entry.login_module == jaas.PLAIN_MODULE
    assert entry.flag == "required"
    assert entry.options["password"] == 'a"b\\c'
    assert jaas.plain_users(entry) == {"admin": "admin-secret", "alice": "alice-pw"}


def test_jaas_several_entries_and_comments() -> None:
    entries = jaas.parse_jaas('a.B required; // note\n c.D optional k="v" /* x */ j=1;')
    assert [(e.login_module, e.flag, e.options) for e in entries] == [
        ("a.B", "required", {}),
        ("c.D", "optional", {"k": "v", "j": "1"}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a.B required",  # no ';'
        "a.B mandatory;",  # bad flag
        'a.B required k="unterminated;',
        "a.B required k=;",
        "a.B required k;",
    ],
)
def test_jaas_malformed(text: str) -> None:
    with pytest.raises(jaas.JaasError):
        jaas.parse_single(text)


def test_jaas_one_module_only() -> None:
    with pytest.raises(jaas.JaasError, match="contains 2 login modules, should be 1 module"):
        jaas.parse_single("a.B required; c.D required;")


def test_jaas_quote_round_trip() -> None:
    value = 'p"w\\d'
    assert jaas.parse_single(f"a.B required k={jaas.quote(value)};").options["k"] == value


# ---------------------------------------------------------------- PLAIN


def plain(users: dict[str, str]) -> PlainServer:
    return PlainServer(users.get)


def test_plain_success() -> None:
    s = plain({"alice": "pw"})
    assert s.evaluate(plain_client_token("alice", "pw")) == b""
    assert s.complete and s.authorization_id == "alice"
    s = plain({"alice": "pw"})
    s.evaluate(plain_client_token("alice", "pw", authzid="alice"))
    assert s.complete


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"alice\0pw", "Invalid SASL/PLAIN response: expected 3 tokens, got 2"),
        (b"\0alice\0pw\0", "Invalid SASL/PLAIN response: expected 3 tokens, got 4"),
        (b"\0\0pw", "Authentication failed: username not specified"),
        (b"\0alice\0", "Authentication failed: password not specified"),
        (
            b"bob\0alice\0pw",
            "Authentication failed: Client requested an authorization id that is different from username",
        ),
        (b"\0alice\0wrong", "Authentication failed: Invalid username or password"),
        (b"\0mallory\0pw", "Authentication failed: Invalid username or password"),
        (b"\xff\xfe\0a\0b", "Invalid SASL/PLAIN response: not UTF-8"),
    ],
)
def test_plain_failures(token: bytes, message: str) -> None:
    with pytest.raises(SaslFailure) as info:
        plain({"alice": "pw"}).evaluate(token)
    assert info.value.reveal
    assert client_message(info.value, "PLAIN") == message


# ---------------------------------------------------------------- SCRAM

RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def rfc7677_server() -> ScramServer:
    cred = make_credential("SCRAM-SHA-256", "pencil", 4096, RFC7677_SALT)
    return ScramServer(
        "SCRAM-SHA-256", lambda u: cred if u == "user" else None, nonce_factory=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )


def test_scram_sha256_rfc7677_vector() -> None:
    s = rfc7677_server()
    first = s.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = s.evaluate(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert s.complete and s.authorization_id == "user"


def test_scram_tampered_nonce_and_proof() -> None:
    s = rfc7677_server()
    s.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    with pytest.raises(SaslFailure, match="Invalid client nonce"):
        s.evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqOXXXX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    s = rfc7677_server()
    s.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    with pytest.raises(SaslFailure, match="Invalid client credentials") as info:
        s.evaluate(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
    assert not info.value.reveal
    assert client_message(info.value, "SCRAM-SHA-256") == (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
    )
    assert not s.complete


@pytest.mark.parametrize(
    "token",
    [b"", b"garbage", b"\xff\xff", b"p=tls-unique,,n=user,r=abc", b"n,,n=,r=abc", b"n,,n=user", b"n,x,n=user,r=a"],
)
def test_scram_garbage_first_message(token: bytes) -> None:
    with pytest.raises(SaslFailure):
        rfc7677_server().evaluate(token)


def test_scram_garbage_final_message() -> None:
    for final in (
        b"garbage",
        b"c=biws,r=x",
        b"c=!!,r=x,p=y",
        b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AA==",
    ):
        s = rfc7677_server()
        s.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        with pytest.raises(SaslFailure):
            s.evaluate(final)


def test_scram_unknown_user_and_authzid() -> None:
    with pytest.raises(SaslFailure, match="Invalid user credentials"):
        rfc7677_server().evaluate(b"n,,n=nobody,r=abc")
    with pytest.raises(SaslFailure, match="authorization id that is different") as info:
        rfc7677_server().evaluate(b"n,a=admin,n=user,r=abc")
    assert info.value.reveal


def test_scram_iterations_below_minimum() -> None:
    cred = make_credential("SCRAM-SHA-512", "pw", 1000)
    with pytest.raises(SaslFailure, match="less than the minimum 4096"):
        ScramServer("SCRAM-SHA-512", lambda u: cred).evaluate(b"n,,n=u,r=abc")


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_scram_client_and_server(mechanism: str) -> None:
    cred = make_credential(mechanism, "s3cret", 4096)
    users = {"a=b,c": cred}
    client = ScramClient(mechanism, "a=b,c", "s3cret", extensions={"tokenauth": "false"})
    server = ScramServer(mechanism, users.get)
    client.verify(server.evaluate(client.final(server.evaluate(client.first()))))
    assert server.complete and server.authorization_id == "a=b,c"
    assert server.extensions == {"tokenauth": "false"}
    wrong = ScramClient(mechanism, "a=b,c", "other")
    server = ScramServer(mechanism, users.get)
    with pytest.raises(SaslFailure):
        server.evaluate(wrong.final(server.evaluate(wrong.first())))


def test_scram_token_auth_without_tokens() -> None:
    cred = make_credential("SCRAM-SHA-256", "pw")
    with pytest.raises(SaslFailure, match="Invalid user credentials"):
        ScramServer("SCRAM-SHA-256", lambda u: cred).evaluate(b"n,,n=tokenid,r=abc,tokenauth=true")


def test_saslname_escapes() -> None:
    assert encode_saslname("a,b=c") == "a=2Cb=3Dc"
    assert decode_saslname("a=2Cb=3Dc") == "a,b=c"
    with pytest.raises(SaslFailure):
        decode_saslname("a=2")


def test_credential_is_salted() -> None:
    a = make_credential("SCRAM-SHA-256", "pw")
    b = make_credential("SCRAM-SHA-256", "pw")
    assert a.salt != b.salt and a.stored_key != b.stored_key
    assert b"pw" not in a.stored_key + a.server_key


# ---------------------------------------------------------------- OAUTHBEARER


def test_oauth_client_response_parsing() -> None:
    parsed = parse_client_response(client_response("h.p.", authzid="alice", extensions={"k": "v"}))
    assert (parsed.authzid, parsed.token, parsed.extensions) == ("alice", "h.p.", {"k": "v"})
    for bad in (
        b"",
        b"garbage",
        b"n,,\x01auth=Bearer\x01\x01",
        b"n,,\x01auth=Basic abc\x01\x01",
        b"y,,\x01auth=Bearer a\x01\x01",
    ):
        with pytest.raises(SaslFailure):
            parse_client_response(bad)


def test_oauth_unsecured_success_and_lifetime() -> None:
    s = OAuthBearerServer(UnsecuredValidator())
    assert s.evaluate(client_response(unsecured_token("alice", lifetime_s=60))) == b""
    assert s.complete and s.authorization_id == "alice"
    assert s.credential_expiry_ms is not None
    assert 50_000 < s.credential_expiry_ms - time.time() * 1000 <= 60_000


def _rejected(server: OAuthBearerServer, token: str) -> str:
    challenge = server.evaluate(client_response(token))
    assert not server.complete
    with pytest.raises(SaslFailure) as info:
        server.evaluate(b"\x01")
    assert info.value.reveal and info.value.message == challenge.decode()
    return challenge.decode()


def _unsecured(header: dict[str, object], claims: dict[str, object]) -> str:
    def enc(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc(header)}.{enc(claims)}."


def test_oauth_unsecured_rejections() -> None:
    now = time.time()
    v = UnsecuredValidator()
    assert _rejected(OAuthBearerServer(v), unsecured_token("alice", lifetime_s=-5)) == '{"status":"invalid_token"}'
    for token in (
        _unsecured({"alg": "HS256"}, {"sub": "a", "exp": now + 60}),  # not alg none
        _unsecured({"alg": "none"}, {"exp": now + 60}),  # no sub
        _unsecured({"alg": "none"}, {"sub": "a"}),  # no exp
        _unsecured({"alg": "none"}, {"sub": "a", "exp": now + 60, "iat": now + 600}),  # issued in the future
        _unsecured({"alg": "none"}, {"sub": "a", "exp": now + 60})[:-1] + "sig",  # signed
        "garbage",
        "a.b.",
    ):
        assert _rejected(OAuthBearerServer(v), token) == '{"status":"invalid_token"}'
    scoped = UnsecuredValidator.from_options({"unsecuredValidatorRequiredScope": "write"})
    assert _rejected(OAuthBearerServer(scoped), unsecured_token("a", scope="read")) == (
        '{"status":"insufficient_scope","scope":"write"}'
    )
    s = OAuthBearerServer(scoped)
    s.evaluate(client_response(unsecured_token("a", scope="read write")))
    assert s.complete


def test_oauth_authzid_must_match() -> None:
    with pytest.raises(SaslFailure, match="authorization id"):
        OAuthBearerServer(UnsecuredValidator()).evaluate(client_response(unsecured_token("alice"), authzid="bob"))


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[object, object]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048), rsa.generate_private_key(
        public_exponent=65537, key_size=2048
    )


def _jwks_file(tmp_path: Path, key: object, kid: str) -> str:
    import jwt

    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))  # type: ignore[attr-defined]
    jwk.update(kid=kid, alg="RS256", use="sig")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path.as_uri()


def test_oauth_signed_jwt(tmp_path: Path, rsa_keys: tuple[object, object]) -> None:
    import jwt

    good, other = rsa_keys
    jwks = JwksSource(_jwks_file(tmp_path, good, "k1"))
    jwks.load()
    v = SignedValidator(jwks, expected_audience=frozenset({"kafka"}), expected_issuer="https://issuer")
    now = int(time.time())
    claims = {"sub": "svc", "aud": "kafka", "iss": "https://issuer", "iat": now, "exp": now + 300}

    def sign(key: object, kid: str = "k1", **changes: object) -> str:
        return jwt.encode({**claims, **changes}, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]

    s = OAuthBearerServer(v)
    s.evaluate(client_response(sign(good)))
    assert s.complete and s.authorization_id == "svc" and s.credential_expiry_ms == (now + 300) * 1000
    for token in (
        sign(other),  # badly signed
        sign(good, kid="k2"),  # unknown key
        sign(good, exp=now - 120),  # expired beyond the 30 s skew
        sign(good, aud="other"),
        sign(good, iss="https://elsewhere"),
        sign(good, sub=""),
        unsecured_token("svc"),  # alg none against a JWKS
    ):
        assert _rejected(OAuthBearerServer(v), token) == '{"status":"invalid_token"}'


def test_client_mechanism_from_jaas() -> None:
    from kafkapy.security.sasl_client import client_mechanism
    from kafkapy.security.scram import ScramClientMechanism

    text = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="b-pw";'
    mech = client_mechanism("SCRAM-SHA-512", text)()
    assert isinstance(mech, ScramClientMechanism) and mech.name == "SCRAM-SHA-512"
    cred = make_credential("SCRAM-SHA-512", "b-pw")
    server = ScramServer("SCRAM-SHA-512", {"broker": cred}.get)
    mech.respond(server.evaluate(mech.respond(server.evaluate(mech.respond(None)))))
    assert mech.complete and server.complete
    plain = client_mechanism("PLAIN", text.replace("scram.ScramLoginModule", "plain.PlainLoginModule"))()
    assert plain.respond(None) == b"\0broker\0b-pw" and plain.complete
    with pytest.raises(ValueError, match="username and password"):
        client_mechanism("PLAIN", "a.B required;")
    with pytest.raises(ValueError, match="GSSAPI"):
        client_mechanism("GSSAPI", text)
