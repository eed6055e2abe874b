import gzip

import pytest

from attend.data.corpus import count_lines, read_lines, read_parallel
from attend.errors import AttendError


def test_plain_gzip_and_tsv(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\nbye\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress("hallo welt\ntschüss\n".encode()))
    (tmp_path / "c.tsv").write_text("hello\thallo\n\nbye\ttschüss\n")
    assert read_parallel(tmp_path / "a.txt", tmp_path / "b.txt.gz") == [("hello world", "hallo welt"), ("bye", "tschüss")]
    assert read_parallel(tmp_path / "c.tsv") == [("hello", "hallo"), ("bye", "tschüss")]


def test_crlf_is_stripped(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\r\ntwo\r\n")
    assert read_lines(tmp_path / "a.txt") == ["one", "two"]


def test_mismatched_line_counts(tmp_path):
    (tmp_path / "s").write_text("a\nb\nc\n")
    (tmp_path / "t").write_text("x\ny\n")
    with pytest.raises(AttendError, match=r"s has 3 lines but .*t has 2"):
        read_parallel(tmp_path / "s", tmp_path / "t")


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    with pytest.raises(AttendError, match=r"bad\.txt:3: invalid UTF-8"):
        read_lines(tmp_path / "bad.txt")


def test_empty_corpus(tmp_path):
    (tmp_path / "s").write_text("")
    (tmp_path / "t").write_text("")
    with pytest.raises(AttendError, match="the corpus is empty"):
        read_parallel(tmp_path / "s", tmp_path / "t")


def test_tsv_with_wrong_columns_names_line(tmp_path):
    (tmp_path / "c.tsv").write_text("a\tb\nonly one column\n")
    with pytest.raises(AttendError, match=r"c\.tsv:2: expected 2 tab-separated columns"):
        read_parallel(tmp_path / "c.tsv")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(AttendError, match="cannot read gzip data"):
        read_lines(tmp_path / "x.gz")


def test_gzip_is_known_by_its_bytes_and_a_bom_is_not_text(tmp_path):
    (tmp_path / "val.en.GZ").write_bytes(gzip.compress(b"A dog.\n"))
    (tmp_path / "val.de").write_bytes(gzip.compress("Ein Hund.\n".encode()))  # gzip without the name
    (tmp_path / "bom.de").write_bytes(b"\xef\xbb\xbfEin Hund.\r\nZwei.\n\xef\xbb\xbfDrei.\n")  # two files, cat-ed
    assert read_parallel(tmp_path / "val.en.GZ", tmp_path / "val.de") == [("A dog.", "Ein Hund.")]
    assert read_lines(tmp_path / "bom.de") == ["Ein Hund.", "Zwei.", "Drei."]  # a BOM would cost BLEU


def test_a_gzip_damaged_anywhere_gives_a_one_line_error(tmp_path):
    """Damage inside the compressed stream raises zlib.error, not OSError: it must still be named."""
    text = "".join(f"line {i}: ein Mann fährt Fahrrad {i * i}\n" for i in range(200)).encode()
    packed = gzip.compress(text)
    path = tmp_path / "x.gz"
    for position in range(10, len(packed), 7):  # after the 10-byte header, through the deflate data and trailer
        damaged = bytearray(packed)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.raises(AttendError, match=r"x\.gz"):
            read_lines(path)
        with pytest.raises(AttendError, match=r"x\.gz"):
            count_lines(path)


def test_a_missing_corpus_file_names_its_key_and_where_it_was_looked_for(tmp_path):
    from attend.config import DataConfig
    from attend.recipes import load_task

    (tmp_path / "train.en").write_text("a\n")
    (tmp_path / "train.de").write_text("b\n")
    cfg = DataConfig(train_src="train.en", train_tgt="train.de", valid_src="val.en", valid_tgt="val.de",
                     data_dir=str(tmp_path))
    with pytest.raises(AttendError, match=r"val\.en: file not found \(data\.valid_src, read from data\.data_dir"):
        load_task(cfg)
    cfg.data_dir = None
    with pytest.raises(AttendError, match=r"train\.en: file not found \(data\.train_src, read from the current folder"):
        load_task(cfg)
