//! A small shipped table of region coordinates (region code → centroid), for
//! impossible-travel checks. Codes are ISO 3166-1 alpha-2 or ISO 3166-2
//! subdivisions, as the gateway reports them. Unknown codes never trigger
//! impossible travel: we would rather miss a signal than invent one.

/// (code, latitude, longitude) of a region's main city.
const REGIONS: &[(&str, f64, f64)] = &[
    ("CN", 39.90, 116.40),
    ("CN-11", 39.90, 116.40), // Beijing
    ("CN-12", 39.13, 117.20), // Tianjin
    ("CN-31", 31.23, 121.47), // Shanghai
    ("CN-32", 32.06, 118.80), // Jiangsu (Nanjing)
    ("CN-33", 30.27, 120.15), // Zhejiang (Hangzhou)
    ("CN-35", 26.08, 119.30), // Fujian (Fuzhou)
    ("CN-37", 36.67, 117.00), // Shandong (Jinan)
    ("CN-42", 30.59, 114.31), // Hubei (Wuhan)
    ("CN-43", 28.23, 112.94), // Hunan (Changsha)
    ("CN-44", 23.13, 113.26), // Guangdong (Guangzhou)
    ("CN-50", 29.56, 106.55), // Chongqing
    ("CN-51", 30.66, 104.07), // Sichuan (Chengdu)
    ("CN-61", 34.34, 108.94), // Shaanxi (Xi'an)
    ("CN-65", 43.83, 87.62),  // Xinjiang (Urumqi)
    ("CN-91", 22.32, 114.17), // Hong Kong
    ("US", 38.90, -77.04),
    ("US-CA", 34.05, -118.24), // Los Angeles
    ("US-NY", 40.71, -74.01),  // New York
    ("US-TX", 29.76, -95.37),  // Houston
    ("US-FL", 25.76, -80.19),  // Miami
    ("US-IL", 41.88, -87.63),  // Chicago
    ("US-WA", 47.61, -122.33), // Seattle
    ("US-GA", 33.75, -84.39),  // Atlanta
    ("US-MA", 42.36, -71.06),  // Boston
    ("US-CO", 39.74, -104.99), // Denver
    ("US-AZ", 33.45, -112.07), // Phoenix
    ("GB", 51.51, -0.13),
    ("DE", 52.52, 13.40),
    ("FR", 48.86, 2.35),
    ("JP", 35.68, 139.69),
    ("KR", 37.57, 126.98),
    ("SG", 1.35, 103.82),
    ("IN", 28.61, 77.21),
    ("AU", -33.87, 151.21),
    ("BR", -23.55, -46.63),
    ("RU", 55.76, 37.62),
    ("PH", 14.60, 120.98),
    ("VN", 21.03, 105.85),
];

/// The coordinates of a region, if the table knows it.
pub fn coordinates(code: &str) -> Option<(f64, f64)> {
    REGIONS.iter().find(|(c, ..)| c.eq_ignore_ascii_case(code)).map(|&(_, lat, lon)| (lat, lon))
}

/// Great-circle distance in kilometres between two known regions.
pub fn distance_km(a: &str, b: &str) -> Option<f64> {
    let ((lat1, lon1), (lat2, lon2)) = (coordinates(a)?, coordinates(b)?);
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    Some(2.0 * 6371.0 * h.sqrt().asin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_plausible() {
        let bj_sh = distance_km("CN-11", "CN-31").expect("known");
        assert!((1000.0..1150.0).contains(&bj_sh), "Beijing-Shanghai {bj_sh}");
        let sh_ny = distance_km("cn-31", "US-NY").expect("known");
        assert!((11_500.0..12_500.0).contains(&sh_ny), "Shanghai-New York {sh_ny}");
        assert_eq!(distance_km("CN-31", "XX-99"), None);
    }
}
