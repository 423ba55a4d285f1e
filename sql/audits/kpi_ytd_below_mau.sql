-- grain: one row per (month, segment) whose year-to-date users are fewer than its monthly active users or than the previous month's year-to-date users of the same year
select m."month", m.segment, m.mau, m.users_ytd, p.users_ytd as users_ytd_prev_month
from kpi_monthly_segments as m
left join kpi_monthly_segments as p
    on p.segment = m.segment
    and p."month" = cast(m."month" - interval 1 month as date)
    and extract(year from p."month") = extract(year from m."month")
where m."month" between $start_month and $end_date
    and (m.users_ytd < m.mau or m.users_ytd < p.users_ytd)
