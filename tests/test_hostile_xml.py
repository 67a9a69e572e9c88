"""XML bombs and external entities never expand: SOAP replies are parsed with defusedxml."""

from __future__ import annotations

import pytest

from formosms.errors import MalformedResponse
from formosms.providers.every8d_soap_codes import parse_connection, parse_xml, soap_result

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<SMS><GET_CONNECTION><CODE>0</CODE><SESSION_KEY>&lol3;</SESSION_KEY></GET_CONNECTION></SMS>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<SMS><GET_CONNECTION><CODE>0</CODE><SESSION_KEY>&xxe;</SESSION_KEY></GET_CONNECTION></SMS>"""


@pytest.mark.parametrize("payload", [BOMB, EXTERNAL])
def test_inner_xml_with_a_dtd_is_refused(payload: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_connection(payload)
    with pytest.raises(MalformedResponse):
        parse_xml(payload, "every8d-soap")


@pytest.mark.parametrize("payload", [BOMB, EXTERNAL])
def test_envelope_with_a_dtd_is_refused(payload: str) -> None:
    envelope = payload.replace(
        "<SMS>", '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><SMS>'
    ).replace("</SMS>", "</SMS></soap:Body></soap:Envelope>")
    with pytest.raises(MalformedResponse):
        soap_result(envelope, "getConnection")
