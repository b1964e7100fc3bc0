"""Administration (the admin role only): users, their roles and departments, password
resets and API tokens; every change written to the administration's audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.cases.auth import MAX_TOKEN_DAYS, ROLES, TOKEN_DAYS, User
from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)
Name = Form(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")


def admin(request: Request, web: Site) -> User:
    user = web.require(request)
    if user.role != "admin":
        raise HTTPException(403, "administration is for the admin role")
    return user


def departments(web: Site, extra: list[str] = ()) -> list[str]:
    """The departments of the duty list, and any a user already has."""
    return sorted({p.department for p in web.pack.posts.values()} | set(extra))


def _page(request: Request, web: Site, user: User, **context):
    return web.render(request, "admin.html", user, users=web.users.users(), roles=ROLES,
                      departments=departments(web, [d for u in web.users.users() for d in u["departments"]]),
                      audit=web.users.admin_audit(50), token_days=TOKEN_DAYS, max_token_days=MAX_TOKEN_DAYS,
                      **{"notice": None, "error": None, "new_token": None, **context})


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, web: Site = Depends(site)):
    return _page(request, web, admin(request, web))


@router.post("/admin/users", response_class=HTMLResponse)
def add_user(request: Request, username: str = Name, password: str = Form(..., max_length=1024),
             role: str = Form(...), department: list[str] = Form(default=[], max_length=50),
             display_name: str = Form("", max_length=128), csrf: str = Form(""), web: Site = Depends(site)):
    user = admin(request, web)
    web.check_csrf(request, csrf)
    if web.users.get(username) is not None:
        return _page(request, web, user, status_code=409, error=("user_exists", username))
    try:
        web.users.add(username, password, role, department, display_name or None)
    except ValueError as err:
        return _page(request, web, user, status_code=422, error=("invalid", str(err)))
    web.users.record(user.username, "add_user", username, {"role": role, "departments": department})
    return RedirectResponse("/admin?done=add_user", status_code=303)


@router.post("/admin/users/{username}", response_class=HTMLResponse)
def change_user(request: Request, username: str, role: str = Form(...),
                department: list[str] = Form(default=[], max_length=50), display_name: str = Form("", max_length=128),
                csrf: str = Form(""), web: Site = Depends(site)):
    user = admin(request, web)
    web.check_csrf(request, csrf)
    before = web.users.get(username)
    if before is None:
        raise HTTPException(404, f"no user {username}")
    if username == user.username and role != "admin":
        return _page(request, web, user, status_code=422, error=("own_role", username))
    try:
        web.users.update(username, role, department, display_name or None)
    except ValueError as err:
        return _page(request, web, user, status_code=422, error=("invalid", str(err)))
    web.users.record(user.username, "change_user", username, {
        "role": [before.role, role], "departments": [list(before.departments), department]})
    return RedirectResponse("/admin?done=change_user", status_code=303)


@router.post("/admin/users/{username}/password", response_class=HTMLResponse)
def reset_password(request: Request, username: str, password: str = Form(..., max_length=1024), csrf: str = Form(""),
                   web: Site = Depends(site)):
    user = admin(request, web)
    web.check_csrf(request, csrf)
    try:
        web.users.set_password(username, password)
    except ValueError as err:
        return _page(request, web, user, status_code=422, error=("invalid", str(err)))
    web.users.record(user.username, "reset_password", username)
    return RedirectResponse("/admin?done=reset_password", status_code=303)


@router.post("/admin/users/{username}/tokens", response_class=HTMLResponse)
def make_token(request: Request, username: str, label: str = Form("", max_length=128),
               days: int = Form(TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS), csrf: str = Form(""), web: Site = Depends(site)):
    user = admin(request, web)
    web.check_csrf(request, csrf)
    try:
        token = web.users.new_token(username, label, days)
    except ValueError as err:
        return _page(request, web, user, status_code=422, error=("invalid", str(err)))
    web.users.record(user.username, "new_token", username, {"label": label, "days": days})
    return _page(request, web, user, new_token=(username, label, token))  # shown once, never stored in the clear


@router.post("/admin/users/{username}/tokens/revoke", response_class=HTMLResponse)
def revoke_tokens(request: Request, username: str, label: str = Form("", max_length=128), csrf: str = Form(""),
                  web: Site = Depends(site)):
    user = admin(request, web)
    web.check_csrf(request, csrf)
    count = web.users.revoke_tokens(username, label or None)
    web.users.record(user.username, "revoke_tokens", username, {"label": label or None, "revoked": count})
    return RedirectResponse("/admin?done=revoke_tokens", status_code=303)
