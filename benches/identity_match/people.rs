//! Generated persons for the matching benchmark: Vietnamese, Russian, Chinese and English
//! names in the proportions of the first clinics, with the names' real skew (two in five
//! Vietnamese are Nguyễn), and noisy copies as another system would send them.
//!
//! Deterministic: person `n` is the same on every run, so a loaded store can be reused.

use carehub::model::{
    Address, BirthDate, ContactPoint, ContactSystem, HumanName, Identifier, ProfilePatch, Sex,
};
use unicode_normalization::UnicodeNormalization;

/// splitmix64: small, fast, good enough to spread names and dates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight (`(item, weight)`).
    pub fn weighted<'a>(&mut self, items: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut at = self.below(u64::from(total)) as u32;
        for (item, w) in items {
            if at < *w {
                return item;
            }
            at -= w;
        }
        items[0].0
    }
}

const VI_FAMILY: &[(&str, u32)] = &[
    ("Nguyễn", 380),
    ("Trần", 110),
    ("Lê", 95),
    ("Phạm", 70),
    ("Hoàng", 51),
    ("Huỳnh", 30),
    ("Phan", 45),
    ("Vũ", 39),
    ("Võ", 25),
    ("Đặng", 21),
    ("Bùi", 20),
    ("Đỗ", 14),
    ("Hồ", 13),
    ("Ngô", 13),
    ("Dương", 10),
    ("Lý", 5),
];
const VI_MIDDLE_M: &[&str] = &["Văn", "Đức", "Minh", "Hữu", "Quang", "Thanh", "Công", "Xuân"];
const VI_MIDDLE_F: &[&str] = &["Thị", "Ngọc", "Thanh", "Thu", "Minh", "Kim", "Thùy", "Bảo"];
const VI_GIVEN_M: &[&str] = &[
    "Hùng", "Dũng", "Tuấn", "Nam", "Long", "Sơn", "Hải", "Khoa", "Quân", "Đạt", "Hiếu", "Trung", "Thắng",
    "Huy", "Phúc", "Bình", "Cường", "Kiên", "Lâm", "Toàn",
];
const VI_GIVEN_F: &[&str] = &[
    "Lan", "Mai", "Hương", "Linh", "Hà", "Trang", "Phương", "Thảo", "Hòa", "Thủy", "Yến", "Vy", "Nhung",
    "Tâm", "Anh", "Ngân", "Hạnh", "Dung", "Loan", "Quỳnh",
];
const RU_FAMILY: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
];
const RU_GIVEN_M: &[&str] = &[
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Иван",
    "Михаил",
    "Николай",
    "Владимир",
    "Евгений",
    "Павел",
];
const RU_GIVEN_F: &[&str] = &[
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Анна",
    "Мария",
    "Ирина",
    "Светлана",
    "Екатерина",
    "Юлия",
    "Людмила",
    "Галина",
];
const RU_FATHER: &[&str] = &[
    "Александров",
    "Сергеев",
    "Дмитриев",
    "Андреев",
    "Алексеев",
    "Иванов",
    "Михайлов",
    "Николаев",
    "Владимиров",
    "Петров",
    "Викторов",
    "Юрьев",
];
const ZH_FAMILY: &[(&str, u32)] = &[
    ("王", 72),
    ("李", 71),
    ("张", 67),
    ("刘", 54),
    ("陈", 45),
    ("杨", 31),
    ("黄", 22),
    ("赵", 21),
    ("吴", 20),
    ("周", 19),
    ("徐", 15),
    ("孙", 15),
    ("马", 13),
    ("朱", 13),
    ("胡", 12),
    ("郭", 11),
    ("何", 10),
    ("林", 10),
    ("高", 9),
    ("罗", 9),
];
const ZH_GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "志强", "海燕", "晓明", "欣怡",
];
const EN_FAMILY: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "White", "Harris", "Clark", "Lewis", "Lee", "Walker",
    "Hall", "Allen", "Young",
];
const EN_GIVEN_M: &[&str] = &[
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Daniel", "Matthew",
];
const EN_GIVEN_F: &[&str] = &[
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Emily",
    "Olivia",
];
const VI_CITY: &[&str] = &["Hà Nội", "Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ", "Huế"];
const RU_CITY: &[&str] = &[
    "Москва",
    "Санкт-Петербург",
    "Новосибирск",
    "Екатеринбург",
    "Казань",
];
const ZH_CITY: &[&str] = &["北京", "上海", "广州", "深圳", "成都"];
const EN_CITY: &[&str] = &["London", "Manchester", "Sydney", "Toronto", "Boston"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Culture {
    Vi,
    Ru,
    Zh,
    En,
}

/// Person `n`: the EMR's record of them (identifier `EMR|E<n>`).
pub fn person(n: u64) -> ProfilePatch {
    let mut r = Rng::new(n);
    let culture = match r.below(100) {
        0..=54 => Culture::Vi,
        55..=74 => Culture::Ru,
        75..=89 => Culture::Zh,
        _ => Culture::En,
    };
    let female = r.chance(0.5);
    let name = match culture {
        Culture::Vi => {
            let (middle, given) = if female {
                (r.pick(VI_MIDDLE_F), r.pick(VI_GIVEN_F))
            } else {
                (r.pick(VI_MIDDLE_M), r.pick(VI_GIVEN_M))
            };
            let family = r.weighted(VI_FAMILY);
            HumanName {
                family: Some(family.into()),
                given: vec![middle.into(), given.into()],
                text: Some(format!("{family} {middle} {given}")),
                ..HumanName::default()
            }
        }
        Culture::Ru => {
            let father = r.pick(RU_FATHER);
            let (family, given, patronymic) = if female {
                (
                    format!("{}а", r.pick(RU_FAMILY)),
                    r.pick(RU_GIVEN_F),
                    format!("{father}на"),
                )
            } else {
                (
                    r.pick(RU_FAMILY).to_string(),
                    r.pick(RU_GIVEN_M),
                    format!("{father}ич"),
                )
            };
            HumanName {
                text: Some(format!("{family} {given} {patronymic}")),
                family: Some(family),
                given: vec![given.into(), patronymic],
                ..HumanName::default()
            }
        }
        Culture::Zh => {
            let family = r.weighted(ZH_FAMILY);
            let given = r.pick(ZH_GIVEN);
            HumanName {
                family: Some(family.into()),
                given: vec![given.into()],
                text: Some(format!("{family}{given}")),
                ..HumanName::default()
            }
        }
        Culture::En => HumanName {
            family: Some(r.pick(EN_FAMILY).into()),
            given: vec![r.pick(if female { EN_GIVEN_F } else { EN_GIVEN_M }).into()],
            ..HumanName::default()
        },
    };
    let year = 1930 + r.below(95);
    let month = 1 + r.below(12);
    let day = 1 + r.below(28);
    // Unique per person: 7919 is prime to 10^8, so n ↦ n·7919 mod 10^8 never repeats below 10^8.
    let line = (n.wrapping_mul(7919).wrapping_add(12_345)) % 100_000_000;
    let phone = match culture {
        Culture::Vi => format!("+849{line:08}"),
        Culture::Ru => format!("+799{line:08}"),
        Culture::Zh => format!("+86139{line:08}"),
        Culture::En => format!("+4479{line:08}"),
    };
    let mut telecom = vec![contact(ContactSystem::Phone, phone)];
    if r.chance(0.5) {
        let local = fold(&format!(
            "{}.{}",
            name.given.last().map(String::as_str).unwrap_or("x"),
            name.family.as_deref().unwrap_or("x")
        ));
        telecom.push(contact(ContactSystem::Email, format!("{local}.{n}@mail.example")));
    }
    let mut addresses = Vec::new();
    if r.chance(0.7) {
        let city = match culture {
            Culture::Vi => r.pick(VI_CITY),
            Culture::Ru => r.pick(RU_CITY),
            Culture::Zh => r.pick(ZH_CITY),
            Culture::En => r.pick(EN_CITY),
        };
        addresses.push(Address {
            lines: vec![format!("{} street {}", 1 + r.below(300), r.below(90))],
            city: Some(city.into()),
            postal_code: Some(format!("{:06}", r.below(1_000_000))),
            ..Address::default()
        });
    }
    ProfilePatch {
        identifiers: vec![Identifier {
            system: "EMR".into(),
            value: format!("E{n}"),
            kind: Some("MR".into()),
        }],
        names: vec![name],
        birth_date: BirthDate::try_from(format!("{year}-{month:02}-{day:02}")).ok(),
        sex: Some(if female { Sex::Female } else { Sex::Male }),
        telecom,
        addresses,
        ..ProfilePatch::default()
    }
}

/// The record a laboratory or booking system would send of person `n`: its own identifier,
/// and the usual damage — diacritics lost, capitals, a typo, a missing middle name, day and
/// month swapped, a digit off in the phone, fields left out.
pub fn noisy_copy(n: u64, seed: u64) -> ProfilePatch {
    let mut p = person(n);
    let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    p.identifiers = vec![Identifier {
        system: "LIS".into(),
        value: format!("L{seed}"),
        kind: None,
    }];
    let name = &mut p.names[0];
    name.text = None;
    let strip = r.chance(0.3);
    let upper = r.chance(0.3);
    let edit = |s: &str, r: &mut Rng| {
        let mut s = if strip { fold(s) } else { s.to_string() };
        if upper {
            s = s.to_uppercase();
        }
        if r.chance(0.08) {
            s = typo(&s, r);
        }
        s
    };
    name.family = name.family.as_deref().map(|f| edit(f, &mut r));
    name.given = name.given.iter().map(|g| edit(g, &mut r)).collect();
    if name.given.len() > 1 && r.chance(0.1) {
        name.given.remove(0);
    }
    if let Some(d) = p.birth_date.take() {
        let s = d.as_str().to_string();
        let (y, m, day) = (&s[0..4], &s[5..7], &s[8..10]);
        p.birth_date = match r.below(100) {
            0..=2 if day <= "12" => BirthDate::try_from(format!("{y}-{day}-{m}")).ok(),
            3..=5 => BirthDate::try_from(format!("{y}-{m}-{}", if day == "10" { "11" } else { "10" })).ok(),
            6..=9 => None,
            _ => Some(d),
        };
    }
    if r.chance(0.2) {
        p.sex = None;
    }
    let mut telecom = Vec::new();
    for c in std::mem::take(&mut p.telecom) {
        match c.system {
            ContactSystem::Phone if r.chance(0.2) => {}
            ContactSystem::Phone if r.chance(0.1) => {
                let mut digits: Vec<char> = c.value.chars().collect();
                let at = digits.len() - 1 - r.below(4) as usize;
                digits[at] = if digits[at] == '1' { '2' } else { '1' };
                telecom.push(contact(ContactSystem::Phone, digits.into_iter().collect()));
            }
            ContactSystem::Email if r.chance(0.5) => {}
            _ => telecom.push(c),
        }
    }
    p.telecom = telecom;
    if r.chance(0.5) {
        p.addresses.clear();
    }
    p
}

fn contact(system: ContactSystem, value: String) -> ContactPoint {
    ContactPoint {
        system,
        value,
        contact_use: None,
        rank: None,
    }
}

/// Diacritics off, `đ` as `d`: how many lab systems still print Vietnamese names.
fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            c => c,
        })
        .collect()
}

/// One character replaced by its neighbour, or two neighbours swapped.
fn typo(s: &str, r: &mut Rng) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let at = 1 + r.below(chars.len() as u64 - 2) as usize;
    if r.chance(0.5) {
        chars.swap(at, at + 1);
    } else {
        chars[at] = chars[at - 1];
    }
    chars.into_iter().collect()
}
