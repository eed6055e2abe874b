from attend.recipes.g2p_cmudict import load, read_lexicon, strip_stress


def test_standard_test_split_is_held_out():
    task = load()
    test_words = {w for w, _ in task.test}
    assert len(test_words) == 11994  # the Yao & Zweig (2015) test words
    assert not test_words & {w for w, _ in task.train}
    assert not test_words & {w for w, _ in task.valid}
    assert not {w for w, _ in task.valid} & {w for w, _ in task.train}
    assert len(task.train) > 110000
    multi = [refs for _, refs in task.test if len(refs) > 1]
    assert len(multi) == 781  # words with several distinct pronunciations, as the split's README counts


def test_lexicon_parsing_and_stress():
    assert read_lexicon("HELLO  HH AH0 L OW1\n") == [("hello", "HH AH L OW")]
    assert strip_stress(["AE1", "B", "ER0"]) == "AE B ER"


def test_a_lexicon_named_in_the_config_is_read_from_the_data_dir(tmp_path):
    from attend.config import DataConfig
    from attend.recipes import load_task

    (tmp_path / "lex.txt").write_text("".join(f"WORD{chr(97 + i % 26) * (1 + i // 26)}  W ER1 D\n" for i in range(300)))
    task = load_task(DataConfig(recipe="g2p-cmudict", train_src="lex.txt", data_dir=str(tmp_path)))
    assert len(task.train) + len(task.valid) == 300 and all(p == "W ER D" for _, p in task.train)


def test_cmudicts_own_format_reads_as_it_is():
    text = ";;; # CMUdict -- Major Version: 0.07\nABACUS  AE1 B AH0 K AH0 S\nABACUS(1)  AH0 B AE1 K AH0 S\n"
    assert read_lexicon(text) == [("abacus", "AE B AH K AH S"), ("abacus", "AH B AE K AH S")]
    maintained = "aalborg AO1 L B AO0 R G # place, danish\n"  # cmudict.dict's trailing comments
    assert read_lexicon(maintained) == [("aalborg", "AO L B AO R G")]


def test_every_lexicon_entry_but_the_test_words_trains(tmp_path):
    # punctuation and letters beyond a-z are words too; only the test words are held out, in any case or variant
    lines = ["AD-HOC  AE1 D HH AA1 K", "MÜLLER  M Y UW1 L ER0", "A.  EY1", "ABADI  AH0 B AA1 D IY0", "abadi(1)  AH0 B AE1 D IY0",
             "LINE-UP  L AY1 N AH2 P", "P.M.  P IY1 EH1 M"]
    (tmp_path / "lex.txt").write_text("".join(line + "\n" for line in lines * 60), encoding="utf-8")
    task = load(str(tmp_path / "lex.txt"))
    words = {w for w, _ in task.train} | {w for w, _ in task.valid}
    assert words == {"ad-hoc", "müller", "a."}  # "abadi" is a test word, and so are "lineup" and "pm"
