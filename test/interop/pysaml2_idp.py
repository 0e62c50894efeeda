"""A tiny SAML 2.0 IdP built on pysaml2 (Debian's python3-pysaml2), for orgsync's round-trip test.

Usage: pysaml2_idp.py <workdir> <sp-metadata-file> <key.pem> <cert.pem> <user-json>

Listens on 127.0.0.1 (a free port), then prints one JSON line: {"port", "entityId", "metadata"}.
GET /sso takes an HTTP-Redirect AuthnRequest, checks its signature against the SP metadata, and
answers the HTML form that HTTP-POSTs a signed Response (signed assertion, RSA-SHA256) to the ACS;
with the extra query parameter encrypt=1 the signed assertion is encrypted for the SP's key
(AES-256-CBC content, RSA-OAEP key transport), with encrypt=3des it is encrypted as pysaml2 does
by default (3DES content), and with signResponse=1 the Response is signed too.
Runs until its stdin closes or it receives SIGTERM.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.sigver import verify_redirect_signature
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT

SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"


class ContentEncryption:
    """pysaml2 encrypts assertions with 3DES: its template (sigver.pre_encryption_part) names
    tripledes-cbc and xmlsec1 gets a des-192 session key, and create_authn_response offers no
    option to change either. This wraps the security context's encrypt_assertion to write
    AES-256-CBC into the template and ask xmlsec1 for an aes-256 session key, unless told to
    keep pysaml2's default."""

    def __init__(self, sec):
        self.encrypt = sec.encrypt_assertion
        self.aes = True
        sec.encrypt_assertion = self.encrypt_assertion

    def encrypt_assertion(self, statement, enc_key, template, key_type="des-192", node_xpath=None):
        if self.aes:
            template.encryption_method.algorithm = AES256_CBC
            key_type = "aes-256"
        return self.encrypt(statement, enc_key, template, key_type, node_xpath)


def main():
    workdir, sp_metadata, key_file, cert_file, user_json = sys.argv[1:6]
    user = json.loads(user_json)
    httpd = HTTPServer(("127.0.0.1", 0), None)
    base = "http://127.0.0.1:%d" % httpd.server_address[1]

    config = IdPConfig()
    config.load({
        "entityid": base + "/metadata",
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(base + "/sso", BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                # The redirect binding signs the query string; checked below with the SP's certificate.
                "want_authn_requests_signed": False,
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
            }
        },
        "key_file": key_file,
        "cert_file": cert_file,
        "metadata": {"local": [sp_metadata]},
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "signing_algorithm": SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "accepted_time_diff": 60,
    })
    idp = Server(config=config)
    content_encryption = ContentEncryption(idp.sec)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path != "/sso":
                self.send_error(404)
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                body = sso(idp, content_encryption, query, user)
            except Exception as error:  # the test reads the reason
                self.send_response(400)
                self.end_headers()
                self.wfile.write(("refused: %r" % error).encode())
                return
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(body.encode())

    httpd.RequestHandlerClass = Handler
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    metadata = create_metadata_string(None, config=config, sign=False)
    print(json.dumps({"port": httpd.server_address[1], "entityId": base + "/metadata",
                      "metadata": metadata.decode() if isinstance(metadata, bytes) else metadata}), flush=True)
    sys.stdin.read()  # the test closes stdin (or kills us) to stop
    httpd.shutdown()


def sso(idp, content_encryption, query, user):
    request = idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
    sp_entity_id = request.message.issuer.text
    certs = idp.metadata.certs(sp_entity_id, "spsso", "signing")
    certs = [c[1] if isinstance(c, tuple) else c for c in certs]
    if "Signature" not in query or not any(verify_redirect_signature(query, idp.sec.sec_backend, cert) for cert in certs):
        raise ValueError("the AuthnRequest signature does not verify with the SP metadata certificate")
    encrypt = query.get("encrypt") in ("1", "3des")
    content_encryption.aes = query.get("encrypt") != "3des"
    sign_response = query.get("signResponse") == "1"
    acs = request.message.assertion_consumer_service_url or idp.config.metadata.assertion_consumer_service(
        sp_entity_id, binding=BINDING_HTTP_POST)[0]["location"]
    response = idp.create_authn_response(
        identity=user["attributes"],
        in_response_to=request.message.id,
        destination=acs,
        sp_entity_id=sp_entity_id,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user["email"]),
        authn={"class_ref": PASSWORDPROTECTEDTRANSPORT},
        sign_response=sign_response,
        sign_assertion=True,
        sign_alg=SHA256,
        digest_alg=DIGEST_SHA256,
        encrypt_assertion=encrypt,
        encrypt_cert_assertion=sp_encryption_cert(idp, sp_entity_id) if encrypt else None,
    )
    http_args = idp.apply_binding(BINDING_HTTP_POST, str(response), acs, query.get("RelayState", ""), response=True)
    return http_args["data"]


def sp_encryption_cert(idp, sp_entity_id):
    cert = idp.metadata.certs(sp_entity_id, "spsso", "encryption")[0]
    cert = cert[1] if isinstance(cert, tuple) else cert
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % cert


if __name__ == "__main__":
    main()
