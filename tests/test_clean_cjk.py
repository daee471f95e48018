"""clean_cjk.py: real news is kept; planted junk (repeated lines, symbol soup, ads, too short, tables) is
removed, each by the rule meant for it; every rule on a small positive and negative case."""
import pytest

import clean_cjk

# Two real articles of the People's Daily, January 1998 (zh_news documents 199801#0008 and #0009)
NEWS = [
    "国务院侨办发表新年贺词\n本报北京１２月３０日讯新华社记者胡晓梦、本报记者吴亚明报道：新年将至，国务院侨务办公室主任"
    "郭东坡今天通过新闻媒介，向海外同胞和国内归侨、侨眷、侨务工作者发表新年贺词。他代表中华人民共和国国务院侨务办公室，"
    "向广大海外同胞和国内归侨、侨眷、侨务工作者，致以亲切的问候和美好的祝愿。\n贺词说，即将过去的１９９７年是我国历史发展"
    "上的重要一年。我国恢复对香港行使主权，五星红旗在香港庄严升起，饱受屈辱的香港终于又回到了祖国的怀抱；９月，中国共产党"
    "第十五次全国代表大会胜利召开，大会对我国改革开放和现代化建设的跨世纪发展作出了战略部署，描绘出宏伟蓝图。",
    "我国将实行播音员主持人持证上岗制度\n李铁映等向第一批获得资格证书的代表颁证\n本报北京１２月３１日讯记者陈陆军从广播"
    "电影电视部获悉：自１９９８年１月１日起，我国将用３年时间在广播影视系统陆续实行播音员主持人持证上岗制度。\n今天上午，"
    "中共中央政治局委员李铁映与广播电影电视部部长孙家正、国家语委主任许嘉璐等，向第一批获得《播音员主持人资格证书》的中央"
    "三台代表颁证。\n颁证会后，李铁映同志与出席会议的播音员、主持人合影留念。（新华社记者摄）",
]
REVIEW = ("质量还不错，内容只适合边上厕所时消遣了。\n宝宝一岁七个月，不是太喜欢，也许是因为色彩不够鲜艳。而且对他而言，"
          "可能太简单了。\n这本书大多内容是参考其他书籍的，参考就参考吧，无可厚非，让我郁闷的是图中的标注根本不知道是干吗的。")

JUNK = {
    "repeated lines": ("欢迎光临本店，全场包邮。\n" * 12, "cjk_duplicate_lines"),
    "symbol soup": ("★☆★☆◆◇◆◇■□■□" * 6 + "的人在是和了" * 3, "cjk_symbol_ratio"),
    "ads": ("【限时特价】点击领取优惠券\n加微信ＡＢＣ１２３免费领取\n代开各类发票电话咨询\n↓↓点击下方链接↓↓\n"
            "全网最低价格保证\n正品行货假一赔十\n官方旗舰店欢迎选购\n新品上市买二送一", "cjk_punct_lines"),
    "too short": ("今天天气很好。", "cjk_too_short"),
    "table": ("１特变电工９．７３\n２黄河化工８．４８\n３厦华电子６．１１\n４川长征４６．０４\n５云南白药３９．８２\n"
              "６青海明胶３３．４１\n７原水股份１３．０２\n８龙舟股份１２．０５\n９鲁北化工７．４８\n", "cjk_low_cjk_share"),
}


@pytest.mark.parametrize("text", NEWS + [REVIEW])
def test_real_news_and_reviews_are_kept(text):
    assert clean_cjk.failed_rule(text) is None


@pytest.mark.parametrize("kind", JUNK)
def test_planted_junk_is_removed_and_its_own_rule_fires(kind):
    text, rule = JUNK[kind]
    assert clean_cjk.failed_rule(text) is not None  # the first rule that fires is the one counted
    assert getattr(clean_cjk, rule.removeprefix("cjk_"))(clean_cjk.cut_up(text))


def doc(text):
    return clean_cjk.cut_up(text)


def test_each_quality_rule_positive_and_negative():
    body = NEWS[0]
    assert clean_cjk.too_short(doc("短" * 99)) and not clean_cjk.too_short(doc("短" * 100))
    assert clean_cjk.low_cjk_share(doc("中文" + "abc" * 2)) and not clean_cjk.low_cjk_share(doc(body))
    assert clean_cjk.non_letters(doc("。，" * 20 + "中" * 30)) and not clean_cjk.non_letters(doc(body))
    assert clean_cjk.symbol_ratio(doc("😀" * 11 + "中" * 89)) and not clean_cjk.symbol_ratio(doc("😀" * 10 + "中" * 90))
    assert clean_cjk.stop_chars(doc("天气晴朗万里无云的")) and not clean_cjk.stop_chars(doc("我的书在桌上"))
    assert clean_cjk.punct_lines(doc("标题\n没有句号\n也没有")) and not clean_cjk.punct_lines(doc("标题\n有句号。"))


def test_each_repetition_rule_positive_and_negative():
    assert clean_cjk.duplicate_lines(doc("一样的一行。\n" * 3 + "不同的一行。")) and not clean_cjk.duplicate_lines(doc(NEWS[1]))
    text = NEWS[0] + "\n" + NEWS[0].split("\n")[1]  # its longest paragraph once more: ~40% of the characters
    assert clean_cjk.duplicate_line_chars(doc(text)) and not clean_cjk.duplicate_line_chars(doc(NEWS[0]))
    assert clean_cjk.top_ngrams(doc("好好好好" * 40)) and not clean_cjk.top_ngrams(doc(NEWS[0]))
    spun = "我们的产品质量非常好价格也很便宜欢迎大家购买" * 6 + NEWS[1]  # one sentence spun six times
    assert clean_cjk.duplicate_ngrams(doc(spun)) and not clean_cjk.duplicate_ngrams(doc(NEWS[1]))


def test_ngram_fractions_by_hand():
    fractions = clean_cjk.ngram_fractions(doc("一二三四五六七八九" * 2))  # 18 characters, the second half repeats
    assert fractions[4] == pytest.approx(2 * 4 / 18)  # every 4-gram of the first half occurs twice
    assert fractions[9] == pytest.approx(9 / 18)      # the 9-gram at 9 repeats the one at 0: 9 characters
    assert fractions[11] == 0.0                       # no 11-gram fits twice in 18 characters
    assert all(v == 0.0 for v in clean_cjk.ngram_fractions(doc("一二三四五六七八九十百千万")).values())


def test_ngram_ids_match_a_dictionary_of_strings():
    import numpy as np
    text = "".join(np.random.default_rng(0).choice(list("的一是不了"), size=300))  # small alphabet: many repeats
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    for n, ids in clean_cjk.ngram_ids(codes, {2, 5, 9}).items():
        grams = [text[i:i + n] for i in range(len(text) - n + 1)]
        assert len(ids) == len(grams)
        assert all((ids[i] == ids[j]) == (grams[i] == grams[j]) for i in range(0, len(grams), 7) for j in range(len(grams)))


def test_skip_and_counters():
    counters = {"rules": {}}
    assert clean_cjk.apply_cjk_rules(JUNK["too short"][0], (), counters, name="d1") is None
    assert counters["rules"]["cjk_too_short"] == {"docs": 1, "chars": len(JUNK["too short"][0])}
    assert counters["removed_examples"]["cjk_too_short"] == ["d1"]
    assert clean_cjk.apply_cjk_rules(NEWS[0], (), counters) == NEWS[0]
    assert clean_cjk.failed_rule(JUNK["too short"][0], skip={"cjk_too_short", "cjk_stop_chars"}) is None
