"""PII recognizers: each on hand-made cases, each beside a benign look-alike; profile settings; the semantizer's use."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from usergpt.config import ConfigError, load_profile
from usergpt.pii import (address_spans, format_spans, id_checksum, id_spans, is_candidate, load_pii_eval,
                         pii_eval_scores, redact_pii)

# (text with PII, the PII, its placeholder, a benign look-alike that must pass through unchanged)
CASES = [
    ("call +1 (415) 555-0132 tonight", "+1 (415) 555-0132", "<PHONE>", "invoice INV-2024-06-0012"),
    ("office 020 7946 0958", "020 7946 0958", "<PHONE>", "ISBN-10 0-306-40615-2"),
    ("座机 010-6552 9988", "010-6552 9988", "<PHONE>", "flight CA1234 2023.12.31 23:59"),
    ("mobile 138.1234.5678", "138.1234.5678", "<PHONE>", "version 2.3.1 build 5678"),
    ("HK +852 2345 6789", "+852 2345 6789", "<PHONE>", "PO-2024-000123"),
    ("身份证 440306198805122038", "440306198805122038", "<ID_NUMBER>", "order 202406181234567890"),
    ("old id 110105491231002", "110105491231002", "<ID_NUMBER>", "tracking SF110105491231002"),
    ("送到北京市朝阳区建国路88号", "北京市朝阳区建国路88号", "<ADDRESS>", "南京路步行街 小吃"),
    ("ship to 221B Baker Street", "221B Baker Street", "<ADDRESS>", "Baker Street tube"),
    ("paid 4111 1111 1111 1111", "4111 1111 1111 1111", "<CREDIT_CARD>", "barcode 6920152400777"),
    ("IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00", "<IBAN>", "SKU 100023456789"),
    ("login from 192.168.1.23", "192.168.1.23", "<IP_ADDRESS>", "iOS 17.4.1 update"),
    ("see https://github.com/lichen", "https://github.com/lichen", "<URL>", "Wall Street Journal"),
    ("mail li88@qq.com", "li88@qq.com", "<EMAIL>", "Super Monkey (Gym) @ Chengdu"),
]


@pytest.mark.parametrize("text,pii,placeholder,benign", CASES)
def test_each_recognizer_and_its_look_alike(text, pii, placeholder, benign):
    out = redact_pii(text)
    assert pii not in out and placeholder in out
    assert redact_pii(benign) == benign


def test_id_number_rules():
    body = "44030619880512203"
    good = body + id_checksum(body)
    assert id_spans(good)[0][3] == 1.0
    typo = body + ("0" if good[-1] != "0" else "1")
    assert id_spans(typo)[0][3] < 1.0                      # a mistyped check digit is still redacted
    assert id_spans("440306198813122038") == []            # month 13: no birth date, not an ID
    assert id_spans("4403061988051220381") == []           # 19 digits


def test_address_and_format_rules():
    t = "上海市徐汇区漕溪北路1200弄3号502室"
    assert [t[s:e] for s, e, *_ in address_spans(t)] == [t]
    assert address_spans("Room 1203, Building 5, Renmin Garden")[0][2] == "ADDRESS"
    assert address_spans("王府井大街夜市") == [] and address_spans("42nd Street musical") == []
    assert [x[2] for x in format_spans("14012345678 a@b.cn")] == ["EMAIL", "PHONE"]
    assert not is_candidate("iPhone 15 Pro 256GB") and is_candidate("742 Evergreen Terrace")


def test_profile_chooses_types_and_regions():
    assert redact_pii("call 020 7946 0958", entities=("EMAIL",)) == "call 020 7946 0958"
    assert redact_pii("Berlin 030 1234567", regions=("CN",)) == "Berlin 030 1234567"
    assert redact_pii("Berlin 030 1234567", regions=("DE",)) == "Berlin <PHONE>"
    assert redact_pii("Berlin +49 30 12345678", regions=("CN",)) == "Berlin <PHONE>"   # country code: any region

def test_settings_errors_name_the_key(tmp_path):
    ini = tmp_path / "settings.ini"
    ini.write_text("[mine]\nsemantize.pii_regions = CN, ZZ\n")
    with pytest.raises(ConfigError, match=r"settings.ini \[mine\] semantize.pii_regions: unknown phone region"):
        load_profile("mine", ini)
    ini.write_text("[mine]\nsemantize.pii_entities = PHONE, SSN\n")
    with pytest.raises(ConfigError, match=r"semantize.pii_entities: must be a non-empty list of one of EMAIL"):
        load_profile("mine", ini)
    assert load_profile("mine", _ok(ini)).semantize.pii_regions == ["CN", "DE"]


def _ok(ini):
    ini.write_text("[mine]\nsemantize.pii_regions = CN, DE\n")
    return ini


def test_external_set_meets_targets_and_reports_names_apart():
    pos, ben = load_pii_eval()
    assert len(pos[pos.type != "PERSON"]) >= 200 and len(ben) >= 200
    s = pii_eval_scores(pos, ben)
    assert s.loc["all", "recall"] >= 0.95 and s.loc["all", "precision"] >= 0.95
    assert s.loc["PERSON", "recall"] == 0 and pd.isna(s.loc["PERSON", "precision"])   # the documented gap
    assert s.loc["all", "cases"] == (pos.type != "PERSON").sum()


def test_eval_file_errors_name_the_case(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(json.dumps(dict(positives=[dict(type="PHONE", region="US", text="call me", pii="555-0100")],
                                 benign=[dict(kind="x", text="y")])))
    with pytest.raises(ValueError, match=r"positives\[0\]: field `pii`"):
        load_pii_eval(p)
