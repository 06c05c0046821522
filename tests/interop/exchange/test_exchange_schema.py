"""The schema check that guards every simulator reply must reject invalid replies."""

from ews_schema import need_schema, validate_envelope, validate_trace_dir

HEAD = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body>'
)
TAIL = "</s:Body></s:Envelope>"
VALID = (
    '<m:GetFolderResponse><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success">'
    "<m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:ContactsFolder>"
    '<t:FolderId Id="AAA" ChangeKey="BBB"/><t:DisplayName>Contacts</t:DisplayName>'
    "</t:ContactsFolder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse>"
)


def test_validator_accepts_valid_and_rejects_invalid_replies():
    need_schema()
    assert validate_envelope((HEAD + VALID + TAIL).encode()) == []
    wrong_order = VALID.replace(
        '<t:FolderId Id="AAA" ChangeKey="BBB"/><t:DisplayName>Contacts</t:DisplayName>',
        '<t:DisplayName>Contacts</t:DisplayName><t:FolderId Id="AAA" ChangeKey="BBB"/>',
    )
    assert validate_envelope((HEAD + wrong_order + TAIL).encode())
    bad_enum = VALID.replace('ResponseClass="Success"', 'ResponseClass="Fine"')
    assert validate_envelope((HEAD + bad_enum + TAIL).encode())
    assert validate_envelope(b"<s:Envelope")


def test_trace_validation_reports_the_offending_file(tmp_path):
    need_schema()
    (tmp_path / "000001-GetFolder.response.xml").write_text(HEAD + VALID + TAIL)
    (tmp_path / "000002-GetFolder.response.xml").write_text(HEAD + VALID.replace("NoError", "NotACode") + TAIL)
    n, problems = validate_trace_dir(tmp_path)
    assert n == 2
    assert len(problems) >= 1 and all(p.startswith("000002-GetFolder") for p in problems)
