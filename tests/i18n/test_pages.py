"""The web UI in Simplified Chinese: chosen by the browser's Accept-Language or the language
cookie that the top bar's switcher sets, and back to English through /i18n/setlang/. The API keeps
speaking English."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from datasets_app.models import Dataset
from tests.factories import ApiKeyFactory, UserFactory, WorkerNodeFactory

pytestmark = pytest.mark.django_db

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
# What the top bar's links say in English; none of it may be left on a Chinese page.
ENGLISH_NAV = ["Dashboard", "Datasets", "Jobs", "Team", "API keys", "API docs", "Password", "Sign out"]
CHINESE_NAV = ["仪表盘", "数据集", "微调任务", "团队", "API 密钥", "API 文档", "密码", "退出登录"]


def signed_in(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def nav_of(html: str) -> str:
    """The top bar's main navigation and user box, where every page shows the same words."""
    nav = re.search(r'<nav class="mainnav">(.*?)</nav>', html, re.S)
    userbox = re.search(r'<div class="userbox">(.*?)</div>', html, re.S)
    assert nav and userbox, "the page has no top bar"
    # The team switcher's options are team names, the user's own words.
    chrome = re.sub(r"<select.*?</select>", " ", nav.group(1) + userbox.group(1), flags=re.S)
    return re.sub(r"<[^>]+>", " ", chrome)


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def assert_chinese_nav(html: str) -> None:
    nav = nav_of(html)
    for word in CHINESE_NAV:
        assert word in nav, word
    for word in ENGLISH_NAV:
        assert not re.search(rf"\b{re.escape(word)}\b", nav), f"English {word!r} left in the nav: {nav}"
    assert '<html lang="zh-hans">' in html


def test_the_sign_in_page_is_chinese_for_a_chinese_browser(db):
    html = page(Client(**ZH), "/accounts/login/")

    assert "<h1>登录</h1>" in html
    assert "忘记密码？" in html and "创建账号" in html and "第一次使用？" in html
    # Our label for the e-mail field, and Django's own catalog for the password's.
    assert '<label for="id_username">邮箱' in html and '<label for="id_password">密码' in html
    assert "Sign in" not in html and "Forgot your password?" not in html and "Email" not in html


def test_a_browser_asking_for_zh_cn_gets_simplified_chinese(db):
    html = page(Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.8"), "/accounts/login/")
    assert "<h1>登录</h1>" in html


def test_the_dashboard_nav_and_cards_are_chinese(alice, team):
    Dataset.objects.create(team=team, name="banking77", task="classification")

    html = page(signed_in(alice, **ZH), "/")

    assert_chinese_nav(html)
    assert "<title>仪表盘 · Tuneforge</title>" in html
    assert "个数据集" in html and "行训练数据" in html  # the datasets card's stats
    assert ">微调任务</a></h2>" in html and "运行中" in html  # the jobs card
    assert "Alice&#x27;s Team (所有者)" in html  # the team switcher names the role in Chinese


def test_the_datasets_list_is_chinese(alice, team):
    Dataset.objects.create(team=team, name="banking77", task="classification", pii_masking=True)

    html = page(signed_in(alice, **ZH), "/datasets/")

    assert_chinese_nav(html)
    assert "<h1>数据集</h1>" in html and "上传数据集" in html
    assert "<th>名称</th><th>任务类型</th><th>版本</th>" in html
    assert "<td>分类</td>" in html  # the task's label
    assert 'title="导入时会遮蔽个人数据"' in html
    assert "Upload a dataset" not in html and "Classification" not in html


def test_the_jobs_list_is_chinese(alice):
    html = page(signed_in(alice, **ZH), "/jobs/")

    assert_chinese_nav(html)
    assert "<h1>微调任务</h1>" in html and "新建任务" in html and "还没有任务。" in html
    assert "微调模型 →</a>" in html and "本月已用 GPU 时长" in html  # the models have a page of their own
    assert "No jobs yet." not in html and "Fine-tuned models" not in html


def test_the_team_page_is_chinese_with_translated_roles(alice, bob, vera, team):
    html = page(signed_in(alice, **ZH), f"/accounts/teams/{team.id}/")

    assert_chinese_nav(html)
    assert "<h2>成员</h2>" in html and "<h2>邀请成员</h2>" in html and "<h2>待处理的邀请</h2>" in html
    assert '<span class="badge">所有者</span>' in html  # alice's own role, next to the team name
    assert '<option value="viewer" selected>查看者</option>' in html  # vera's role in the role picker
    assert 'data-confirm="将此成员移出团队？"' in html  # the confirmation dialog's question
    assert "Members" not in html and "Invite someone" not in html and ">Viewer<" not in html


def test_the_api_keys_page_is_chinese(alice, team):
    ApiKeyFactory(team=team, name="nightly eval")

    html = page(signed_in(alice, **ZH), "/accounts/api-keys/")

    assert_chinese_nav(html)
    assert "<h1>API 密钥 " in html and "<h2>创建密钥</h2>" in html and "<h2>本团队的密钥</h2>" in html
    assert "读取" in html and "写入" in html and "推理" in html  # the scope checkboxes
    assert '<option value="" selected>永不过期</option>' in html
    assert '<span class="badge ok">有效</span>' in html
    assert "Create a key" not in html and "Keys of this team" not in html


def test_the_workers_page_is_chinese_for_staff(db):
    admin = UserFactory(email="ops@example.com", is_staff=True)
    WorkerNodeFactory(name="gpu0@node-a.example")

    html = page(signed_in(admin, **ZH), "/workers/")

    assert "<h1>工作节点</h1>" in html
    assert '<span class="badge online">在线</span>' in html
    assert "GPU 73% · 40.0 / 140.4 GiB" in html and "秒前" in html
    assert ">排空</button>" in html and ">暂停</button>" in html


def test_flash_messages_are_chinese(alice, team):
    client = signed_in(alice, **ZH)

    response = client.post("/accounts/api-keys/", {"name": "ci", "scopes": ["read"]}, follow=True)

    assert "API 密钥“ci”已创建。" in response.content.decode()


def test_the_switcher_brings_english_back_and_the_choice_sticks(alice):
    client = signed_in(alice, **ZH)
    assert_chinese_nav(page(client, "/datasets/"))

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/datasets/"})

    assert response.status_code == 302 and response["Location"] == "/datasets/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    html = page(client, "/datasets/")  # the browser still sends Accept-Language: zh-hans
    nav = nav_of(html)
    assert all(word in nav for word in ENGLISH_NAV)
    assert "数据集" not in nav and "<h1>Datasets</h1>" in html and '<html lang="en">' in html


def test_the_switcher_turns_an_english_browser_chinese(alice):
    client = signed_in(alice)
    assert "<h1>Datasets</h1>" in page(client, "/datasets/")

    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/datasets/"})

    assert_chinese_nav(page(client, "/datasets/"))


def test_the_javascript_catalog_serves_the_upload_scripts_strings_in_chinese(db):
    chinese = Client(**ZH).get("/jsi18n/").content.decode()
    english = Client().get("/jsi18n/").content.decode()

    assert '"Problem": "\\u95ee\\u9898"' in chinese  # 问题
    assert "\\u95ee\\u9898" not in english
    # Only our catalog: the admin's JavaScript strings stay out of every page's download.
    assert "Available %s" not in chinese


def test_api_errors_stay_english_for_a_chinese_browser(alice_client, anon_client, alice):
    alice_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    missing = alice_client.get("/api/v1/datasets/ds_missing", HTTP_ACCEPT_LANGUAGE="zh-hans")
    anonymous = anon_client.get("/api/v1/datasets", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert missing.status_code == 404
    assert anonymous.status_code in (401, 403)
    for response in (missing, anonymous):
        message = response.json()["error"]["message"]
        assert message.isascii(), message
