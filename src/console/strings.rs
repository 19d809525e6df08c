//! The console's strings: key → [English, Vietnamese, Russian, Chinese]. Read through
//! `i18n.rs`; a unit test there checks every template's keys against this table.

/// key → [English, Vietnamese, Russian, Chinese].
pub(super) const STRINGS: &[(&str, [&str; 4])] = &[
    ("menu", ["Menu", "Trình đơn", "Меню", "菜单"]),
    ("language", ["Language", "Ngôn ngữ", "Язык", "语言"]),
    ("apply", ["Apply", "Áp dụng", "Применить", "应用"]),
    ("role", ["Role", "Vai trò", "Роль", "角色"]),
    ("logout", ["Log out", "Đăng xuất", "Выйти", "退出"]),
    ("login", ["Log in", "Đăng nhập", "Войти", "登录"]),
    (
        "login_title",
        [
            "carehub console",
            "Bảng điều khiển carehub",
            "Консоль carehub",
            "carehub 控制台",
        ],
    ),
    (
        "login_help",
        [
            "Paste an API token (made with `carehub token create`; the first start writes one to data/admin.token). What you see follows the token's role.",
            "Dán một mã API (tạo bằng `carehub token create`; lần khởi động đầu tiên ghi một mã vào data/admin.token). Nội dung hiển thị tùy theo vai trò của mã.",
            "Вставьте API-токен (создаётся командой `carehub token create`; первый запуск записывает его в data/admin.token). Что вы увидите, зависит от роли токена.",
            "粘贴一个 API 令牌（用 `carehub token create` 创建；首次启动会写入 data/admin.token）。可见内容取决于令牌的角色。",
        ],
    ),
    (
        "login_oidc",
        [
            "Log in with the identity provider",
            "Đăng nhập qua nhà cung cấp danh tính",
            "Войти через поставщика удостоверений",
            "通过身份提供方登录",
        ],
    ),
    (
        "oidc_off",
        [
            "Logging in through the identity provider is not configured.",
            "Chưa cấu hình đăng nhập qua nhà cung cấp danh tính.",
            "Вход через поставщика удостоверений не настроен.",
            "未配置通过身份提供方登录。",
        ],
    ),
    (
        "oidc_state",
        [
            "The login through the identity provider expired or was not started in this browser. Please try again.",
            "Phiên đăng nhập qua nhà cung cấp danh tính đã hết hạn hoặc không bắt đầu từ trình duyệt này. Vui lòng thử lại.",
            "Вход через поставщика удостоверений истёк или начат не в этом браузере. Попробуйте ещё раз.",
            "通过身份提供方的登录已过期或并非从此浏览器发起。请重试。",
        ],
    ),
    (
        "oidc_refused",
        [
            "The identity provider did not log you in.",
            "Nhà cung cấp danh tính không cho phép đăng nhập.",
            "Поставщик удостоверений не выполнил вход.",
            "身份提供方未能让您登录。",
        ],
    ),
    (
        "oidc_down",
        [
            "The identity provider cannot be reached now. Please try again later or paste a token.",
            "Hiện không kết nối được nhà cung cấp danh tính. Vui lòng thử lại sau hoặc dán một mã.",
            "Поставщик удостоверений сейчас недоступен. Попробуйте позже или вставьте токен.",
            "目前无法连接身份提供方。请稍后重试或粘贴令牌。",
        ],
    ),
    (
        "oidc_no_role",
        [
            "Your account at the identity provider grants no carehub role. Ask your administrator for one.",
            "Tài khoản của bạn tại nhà cung cấp danh tính không có vai trò carehub nào. Hãy đề nghị quản trị viên cấp.",
            "Ваша учётная запись у поставщика удостоверений не даёт роли в carehub. Обратитесь к администратору.",
            "您在身份提供方的账户没有任何 carehub 角色。请向管理员申请。",
        ],
    ),
    ("token", ["Token", "Mã truy cập", "Токен", "令牌"]),
    (
        "login_refused",
        [
            "This token is unknown, revoked or expired. Check it, or ask an admin for a new one.",
            "Mã này không tồn tại, đã bị thu hồi hoặc đã hết hạn. Hãy kiểm tra lại hoặc xin quản trị viên mã mới.",
            "Токен неизвестен, отозван или истёк. Проверьте его или попросите у администратора новый.",
            "此令牌未知、已吊销或已过期。请检查，或向管理员申请新令牌。",
        ],
    ),
    (
        "login_expired",
        [
            "The login form expired. Please paste the token again.",
            "Biểu mẫu đăng nhập đã hết hạn. Vui lòng dán lại mã.",
            "Форма входа устарела. Вставьте токен ещё раз.",
            "登录表单已过期，请重新粘贴令牌。",
        ],
    ),
    (
        "store_down",
        [
            "The store cannot be reached right now. Try again in a minute; if it lasts, check the hub's log.",
            "Hiện không kết nối được kho dữ liệu. Hãy thử lại sau một phút; nếu vẫn lỗi, xem nhật ký của hub.",
            "Хранилище сейчас недоступно. Повторите через минуту; если не пройдёт, посмотрите журнал хаба.",
            "暂时无法访问存储。请一分钟后重试；若仍失败，请查看 hub 日志。",
        ],
    ),
    (
        "not_found",
        ["not found", "không tìm thấy", "не найдено", "未找到"],
    ),
    (
        "problem",
        [
            "Something is not right",
            "Có điều chưa đúng",
            "Что-то не так",
            "出了点问题",
        ],
    ),
    (
        "home",
        ["Back to the start", "Về trang đầu", "На главную", "返回首页"],
    ),
    ("overview", ["Overview", "Tổng quan", "Обзор", "概览"]),
    ("messages", ["Messages", "Tin nhắn", "Сообщения", "消息"]),
    ("message", ["Message", "Tin nhắn", "Сообщение", "消息"]),
    ("patients", ["Patients", "Bệnh nhân", "Пациенты", "患者"]),
    ("patient", ["Patient", "Bệnh nhân", "Пациент", "患者"]),
    (
        "review",
        ["Review", "Xem xét trùng lặp", "Проверка дублей", "待审核"],
    ),
    (
        "notifications",
        ["Notifications", "Thông báo", "Уведомления", "通知"],
    ),
    ("alerts", ["Alerts", "Cảnh báo", "Оповещения", "告警"]),
    (
        "alerts_none_configured",
        [
            "No alert is configured. Declare alert rules in config/alerts.yaml (docs/operations.md); firing alerts show here.",
            "Chưa cấu hình cảnh báo nào. Khai báo quy tắc trong config/alerts.yaml (docs/operations.md); cảnh báo đang kích hoạt sẽ hiện ở đây.",
            "Оповещения не настроены. Опишите правила в config/alerts.yaml (docs/operations.md); сработавшие оповещения появятся здесь.",
            "尚未配置告警。请在 config/alerts.yaml 中声明告警规则（见 docs/operations.md）；触发的告警会显示在这里。",
        ],
    ),
    (
        "alerts_quiet",
        [
            "No alert is firing.",
            "Không có cảnh báo nào.",
            "Нет сработавших оповещений.",
            "没有正在触发的告警。",
        ],
    ),
    ("connectors", ["Connectors", "Kết nối", "Коннекторы", "连接器"]),
    ("connector", ["Connector", "Kết nối", "Коннектор", "连接器"]),
    (
        "connectors_empty",
        [
            "No connector has reported yet. Declare one in connectors/*.yaml, check it with `carehub validate` and restart the hub.",
            "Chưa có kết nối nào báo cáo. Khai báo một kết nối trong connectors/*.yaml, kiểm tra bằng `carehub validate` rồi khởi động lại hub.",
            "Ни один коннектор ещё не отчитался. Опишите коннектор в connectors/*.yaml, проверьте `carehub validate` и перезапустите хаб.",
            "还没有连接器上报。请在 connectors/*.yaml 中声明连接器，用 `carehub validate` 检查后重启 hub。",
        ],
    ),
    ("state", ["State", "Trạng thái", "Состояние", "状态"]),
    (
        "last_message",
        [
            "Last message",
            "Tin nhắn cuối",
            "Последнее сообщение",
            "最后一条消息",
        ],
    ),
    ("ago", ["ago", "trước", "назад", "前"]),
    (
        "per_minute_hour",
        [
            "Per minute, last hour",
            "Mỗi phút, giờ qua",
            "В минуту, за час",
            "每分钟（近一小时）",
        ],
    ),
    ("received", ["Received", "Đã nhận", "Получено", "已接收"]),
    ("processed", ["Processed", "Đã xử lý", "Обработано", "已处理"]),
    ("errors", ["Errors", "Lỗi", "Ошибки", "错误"]),
    ("unmapped", ["Unmapped", "Chưa ánh xạ", "Без маппинга", "未映射"]),
    ("duplicates", ["Duplicates", "Trùng lặp", "Дубликаты", "重复"]),
    (
        "fhir_pulls",
        ["FHIR pulls", "Lấy dữ liệu FHIR", "Загрузки FHIR", "FHIR 拉取"],
    ),
    (
        "pulls_empty",
        [
            "No FHIR pull is configured. Add a connector with `type: fhir` and a schedule to pull from a FHIR server.",
            "Chưa cấu hình lấy dữ liệu FHIR. Thêm một kết nối `type: fhir` có lịch chạy để lấy dữ liệu từ máy chủ FHIR.",
            "Загрузки FHIR не настроены. Добавьте коннектор `type: fhir` с расписанием, чтобы забирать данные с FHIR-сервера.",
            "未配置 FHIR 拉取。添加一个带计划的 `type: fhir` 连接器即可从 FHIR 服务器拉取。",
        ],
    ),
    (
        "last_run",
        ["Last run", "Lần chạy cuối", "Последний запуск", "上次运行"],
    ),
    (
        "next_run",
        ["Next run", "Lần chạy tới", "Следующий запуск", "下次运行"],
    ),
    ("outcome", ["Outcome", "Kết quả", "Итог", "结果"]),
    (
        "cursor_lag",
        ["Cursor lag", "Độ trễ con trỏ", "Отставание курсора", "游标滞后"],
    ),
    ("queues", ["Queues", "Hàng đợi", "Очереди", "队列"]),
    ("channel", ["Channel", "Kênh", "Канал", "渠道"]),
    ("depth", ["Waiting", "Đang chờ", "В очереди", "待处理"]),
    (
        "dead_letters",
        ["Dead letters", "Thư lỗi", "Недоставленные", "死信"],
    ),
    (
        "queues_empty",
        [
            "No notification channel is configured. Add channels in config/carehub.yaml (docs/channels.md) to send notifications.",
            "Chưa cấu hình kênh thông báo. Thêm kênh trong config/carehub.yaml (docs/channels.md) để gửi thông báo.",
            "Каналы уведомлений не настроены. Добавьте каналы в config/carehub.yaml (docs/channels.md), чтобы отправлять уведомления.",
            "未配置通知渠道。请在 config/carehub.yaml 中添加渠道（见 docs/channels.md）以发送通知。",
        ],
    ),
    ("outbox", ["Outbox", "Hộp thư đi", "Исходящие", "发件箱"]),
    (
        "outbox_empty",
        [
            "Nothing in the outbox yet. Notifications appear once a rule in config/rules/ fires.",
            "Hộp thư đi đang trống. Thông báo sẽ xuất hiện khi một quy tắc trong config/rules/ được kích hoạt.",
            "В исходящих пока пусто. Уведомления появятся, когда сработает правило из config/rules/.",
            "发件箱为空。config/rules/ 中的规则触发后会出现通知。",
        ],
    ),
    (
        "see_notifications",
        [
            "See notifications",
            "Xem thông báo",
            "Открыть уведомления",
            "查看通知",
        ],
    ),
    (
        "review_waiting",
        [
            "possible duplicates wait for a decision.",
            "hồ sơ có thể trùng đang chờ quyết định.",
            "возможных дублей ждут решения.",
            "条疑似重复记录待决定。",
        ],
    ),
    (
        "review_open",
        [
            "Open the review queue",
            "Mở hàng chờ xem xét",
            "Открыть очередь проверки",
            "打开审核队列",
        ],
    ),
    (
        "review_none",
        [
            "No possible duplicate waits for a decision. Doubtful matches appear here when records arrive.",
            "Không có hồ sơ nghi trùng nào chờ quyết định. Các trường hợp không chắc chắn sẽ hiện ở đây khi có dữ liệu mới.",
            "Нет возможных дублей, ожидающих решения. Сомнительные совпадения появятся здесь по мере поступления записей.",
            "没有待决定的疑似重复。记录到达时，不确定的匹配会显示在这里。",
        ],
    ),
    (
        "review_admin_only",
        [
            "Only an admin may link or reject.",
            "Chỉ quản trị viên mới được liên kết hoặc từ chối.",
            "Связать или отклонить может только администратор.",
            "只有管理员可以合并或拒绝。",
        ],
    ),
    ("any", ["any", "tất cả", "любой", "全部"]),
    ("status", ["Status", "Trạng thái", "Статус", "状态"]),
    ("search", ["Search", "Tìm", "Найти", "搜索"]),
    ("clear", ["Clear", "Xóa bộ lọc", "Сбросить", "清除"]),
    ("received_at", ["Received at", "Nhận lúc", "Получено", "接收时间"]),
    ("type", ["Type", "Loại", "Тип", "类型"]),
    (
        "control_id",
        ["Control id", "Mã kiểm soát", "Контрольный id", "控制 ID"],
    ),
    ("error", ["Error", "Lỗi", "Ошибка", "错误"]),
    (
        "older",
        [
            "Older messages →",
            "Tin cũ hơn →",
            "Более старые →",
            "更早的消息 →",
        ],
    ),
    (
        "messages_empty",
        [
            "No message matches. Clear the filters, or send one: a file in the inbox folder or an HL7 message over MLLP.",
            "Không có tin nhắn phù hợp. Hãy xóa bộ lọc, hoặc gửi một tin: một tệp vào thư mục inbox hoặc tin HL7 qua MLLP.",
            "Нет подходящих сообщений. Сбросьте фильтры или отправьте сообщение: файл в папку inbox или HL7 по MLLP.",
            "没有符合条件的消息。请清除筛选，或发送一条：把文件放入 inbox 目录，或通过 MLLP 发送 HL7 消息。",
        ],
    ),
    ("mapping", ["Mapping", "Ánh xạ", "Маппинг", "映射"]),
    ("size", ["Size", "Kích thước", "Размер", "大小"]),
    (
        "duplicate_of",
        ["Duplicate of", "Trùng với", "Дубликат", "重复于"],
    ),
    ("warnings", ["Warnings", "Cảnh báo", "Предупреждения", "警告"]),
    ("result", ["Result", "Kết quả", "Результат", "结果"]),
    ("kind", ["Kind", "Loại", "Вид", "种类"]),
    ("key", ["Key", "Khóa", "Ключ", "键"]),
    ("when", ["When", "Thời điểm", "Когда", "时间"]),
    (
        "raw",
        ["Raw message", "Tin nhắn gốc", "Исходное сообщение", "原始消息"],
    ),
    (
        "segments",
        [
            "Segments and fields",
            "Phân đoạn và trường",
            "Сегменты и поля",
            "段与字段",
        ],
    ),
    ("line", ["line", "dòng", "строка", "行"]),
    (
        "identifier",
        ["Identifier", "Mã định danh", "Идентификатор", "标识符"],
    ),
    ("system", ["System", "Hệ thống", "Система", "系统"]),
    (
        "optional",
        ["optional", "không bắt buộc", "необязательно", "可选"],
    ),
    (
        "patients_start",
        [
            "Search a patient by an identifier (a medical record number, a national id…).",
            "Tìm bệnh nhân theo mã định danh (số hồ sơ bệnh án, số CCCD…).",
            "Найдите пациента по идентификатору (номер карты, СНИЛС…).",
            "按标识符（病历号、身份证号等）搜索患者。",
        ],
    ),
    (
        "patients_empty",
        [
            "No patient has this identifier. Check the value and the system, or leave the system empty.",
            "Không có bệnh nhân nào với mã này. Kiểm tra giá trị và hệ thống, hoặc để trống ô hệ thống.",
            "Нет пациента с таким идентификатором. Проверьте значение и систему или оставьте систему пустой.",
            "没有患者使用此标识符。请检查值和系统，或将系统留空。",
        ],
    ),
    ("name", ["Name", "Họ tên", "Имя", "姓名"]),
    (
        "birth_date",
        ["Birth date", "Ngày sinh", "Дата рождения", "出生日期"],
    ),
    ("sex", ["Sex", "Giới tính", "Пол", "性别"]),
    (
        "identifiers",
        ["Identifiers", "Mã định danh", "Идентификаторы", "标识符"],
    ),
    (
        "identifiers_empty",
        [
            "No identifier is known.",
            "Chưa có mã định danh.",
            "Идентификаторы неизвестны.",
            "没有已知标识符。",
        ],
    ),
    (
        "merged_into",
        ["merged into", "đã gộp vào", "объединён с", "已合并到"],
    ),
    ("profile", ["Profile", "Hồ sơ", "Профиль", "档案"]),
    (
        "provenance",
        [
            "Where each value came from",
            "Nguồn của từng giá trị",
            "Откуда каждое значение",
            "各字段来源",
        ],
    ),
    ("field", ["Field", "Trường", "Поле", "字段"]),
    ("value", ["Value", "Giá trị", "Значение", "值"]),
    ("source", ["Source", "Nguồn", "Источник", "来源"]),
    (
        "sources",
        ["Source records", "Bản ghi nguồn", "Исходные записи", "源记录"],
    ),
    ("timeline", ["Timeline", "Dòng thời gian", "Хронология", "时间线"]),
    (
        "timeline_empty",
        [
            "No visit, appointment, order, result or diagnosis yet. They appear as the clinic's systems send them.",
            "Chưa có lượt khám, lịch hẹn, chỉ định, kết quả hay chẩn đoán. Chúng sẽ hiện khi hệ thống của phòng khám gửi đến.",
            "Пока нет визитов, записей, назначений, результатов и диагнозов. Они появятся, когда их пришлют системы клиники.",
            "暂无就诊、预约、医嘱、结果或诊断。诊所系统发送后会显示在这里。",
        ],
    ),
    ("details", ["Details", "Chi tiết", "Подробности", "详情"]),
    (
        "interactions",
        ["Interactions", "Tương tác", "Взаимодействия", "互动"],
    ),
    (
        "interactions_empty",
        [
            "No notification was sent to this patient. Rules in config/rules/ decide when one is.",
            "Chưa gửi thông báo nào cho bệnh nhân này. Các quy tắc trong config/rules/ quyết định khi nào gửi.",
            "Пациенту ещё не отправляли уведомлений. Когда отправлять, решают правила в config/rules/.",
            "尚未向该患者发送通知。何时发送由 config/rules/ 中的规则决定。",
        ],
    ),
    ("rule", ["Rule", "Quy tắc", "Правило", "规则"]),
    ("merge", ["Merge", "Gộp", "Объединить", "合并"]),
    (
        "merge_help",
        [
            "Id of the person to merge into this one",
            "Mã người cần gộp vào hồ sơ này",
            "Id пациента, которого объединить с этим",
            "要合并到此人的患者 ID",
        ],
    ),
    (
        "unmerge",
        [
            "Undo the latest merge",
            "Hoàn tác lần gộp gần nhất",
            "Отменить последнее объединение",
            "撤销最近一次合并",
        ],
    ),
    (
        "unmerge_help",
        [
            "Both persons become as they were.",
            "Hai hồ sơ trở lại như trước.",
            "Обе записи станут прежними.",
            "两人恢复原状。",
        ],
    ),
    (
        "score",
        ["Match score", "Điểm khớp", "Оценка совпадения", "匹配分"],
    ),
    ("comparison", ["Comparison", "So sánh", "Сравнение", "比较"]),
    ("weight", ["Weight", "Trọng số", "Вес", "权重"]),
    (
        "link",
        [
            "Same person: link",
            "Cùng một người: liên kết",
            "Один человек: связать",
            "同一人：合并",
        ],
    ),
    (
        "reject",
        [
            "Different people: reject",
            "Khác người: từ chối",
            "Разные люди: отклонить",
            "不同人：拒绝",
        ],
    ),
    (
        "channel_report",
        [
            "Sends by channel",
            "Lượt gửi theo kênh",
            "Отправки по каналам",
            "按渠道统计发送",
        ],
    ),
    (
        "last_30_days",
        ["last 30 days", "30 ngày qua", "за 30 дней", "近 30 天"],
    ),
    (
        "report_empty",
        [
            "No send in the last 30 days. Sends appear once rules fire and channels are configured.",
            "Không có lượt gửi nào trong 30 ngày qua. Lượt gửi sẽ xuất hiện khi quy tắc kích hoạt và kênh đã được cấu hình.",
            "За 30 дней отправок не было. Они появятся, когда сработают правила и будут настроены каналы.",
            "近 30 天没有发送。规则触发且渠道配置好后会显示发送记录。",
        ],
    ),
    (
        "failed_sends",
        ["Failed sends", "Gửi thất bại", "Неудачные отправки", "发送失败"],
    ),
    (
        "failed_empty",
        [
            "No send has failed. Failures show here with the provider's answer.",
            "Không có lượt gửi nào thất bại. Lỗi sẽ hiện ở đây kèm phản hồi của nhà cung cấp.",
            "Неудачных отправок нет. Ошибки появятся здесь с ответом провайдера.",
            "没有发送失败。失败会连同服务商的回复显示在这里。",
        ],
    ),
    ("attempts", ["Attempts", "Số lần thử", "Попытки", "尝试次数"]),
    (
        "provider_answer",
        [
            "Provider's answer",
            "Phản hồi nhà cung cấp",
            "Ответ провайдера",
            "服务商回复",
        ],
    ),
    (
        "patient_identifier",
        [
            "Patient identifier",
            "Mã bệnh nhân",
            "Идентификатор пациента",
            "患者标识符",
        ],
    ),
    (
        "received_from",
        ["Received from", "Nhận từ", "Получено с", "接收自"],
    ),
    (
        "received_to",
        ["Received before", "Nhận trước", "Получено до", "接收早于"],
    ),
    ("select", ["Select", "Chọn", "Выбрать", "选择"]),
    (
        "reprocess",
        ["Reprocess", "Xử lý lại", "Повторная обработка", "重新处理"],
    ),
    (
        "reprocess_one",
        [
            "Reprocess with today's mappings",
            "Xử lý lại với ánh xạ hiện tại",
            "Обработать заново по текущим маппингам",
            "用当前映射重新处理",
        ],
    ),
    (
        "reprocess_help",
        [
            "The mapping files are read from disk now: fix a mapping, then reprocess. Same dedupe, identity and events as on arrival.",
            "Các tệp ánh xạ được đọc lại từ đĩa: sửa ánh xạ rồi xử lý lại. Vẫn khử trùng, nhận dạng và sự kiện như lúc nhận.",
            "Файлы маппингов читаются с диска сейчас: исправьте маппинг и обработайте заново. Та же дедупликация, идентификация и события, что при приёме.",
            "映射文件现在从磁盘读取：先修正映射，再重新处理。去重、身份识别和事件与接收时相同。",
        ],
    ),
    (
        "reprocess_selected",
        [
            "Reprocess the selected",
            "Xử lý lại mục đã chọn",
            "Обработать выбранные",
            "重新处理所选",
        ],
    ),
    (
        "reprocess_filter",
        [
            "Reprocess everything this filter finds",
            "Xử lý lại mọi tin theo bộ lọc",
            "Обработать всё по фильтру",
            "重新处理筛选出的全部",
        ],
    ),
    (
        "reprocess_filter_help",
        [
            "Without a status: the error and unmapped ones. Try a dry run first.",
            "Không chọn trạng thái: các tin lỗi và chưa ánh xạ. Nên chạy thử trước.",
            "Без статуса: ошибочные и без маппинга. Сначала попробуйте пробный прогон.",
            "未选状态时：处理错误和未映射的消息。建议先试运行。",
        ],
    ),
    (
        "dry_run",
        [
            "dry run (count only)",
            "chạy thử (chỉ đếm)",
            "пробный прогон (только подсчёт)",
            "试运行（只计数）",
        ],
    ),
    (
        "mapping_problems",
        [
            "The mapping files have problems; nothing was reprocessed. Fix them and try again:",
            "Tệp ánh xạ có lỗi; chưa xử lý lại gì. Hãy sửa rồi thử lại:",
            "В файлах маппингов ошибки; ничего не обработано. Исправьте и повторите:",
            "映射文件有问题，未做任何重新处理。请修正后重试：",
        ],
    ),
    ("selected", ["Selected", "Đã chọn", "Выбрано", "已选择"]),
    (
        "reprocessed",
        ["Read again", "Đã đọc lại", "Прочитано заново", "已重新读取"],
    ),
    (
        "changed",
        ["Status changed", "Đổi trạng thái", "Статус изменился", "状态变化"],
    ),
    ("now_status", ["Now", "Hiện tại", "Теперь", "现在"]),
    ("before", ["Before", "Trước", "До", "之前"]),
    ("after", ["After", "Sau", "После", "之后"]),
];
